// deepshock/platform/memory.hpp — vector memory accesses of the kernels: 16-byte loads and
// stores (global or shared, 16-byte aligned addresses), the 32-bit loads of two 16-bit values
// that fill tensor-core fragments, and the asynchronous global -> shared copies (cp.async,
// sm_80+). Under nvcc they are single instructions; in the simulator they copy bytes (no type
// punning on the host) and fail the launch on a misaligned address, as the GPU would; cp.async
// runs through the simulator's model (sim/engine.hpp): the destination holds 0xFF poison from
// the issue until a wait completes the copy's group.
//
// cp.async protocol (as in PTX): issue copies with cp_async16, close a group with
// cp_async_commit, and cp_async_wait<N>() blocks until at most N of this thread's committed
// groups are still in flight. The wait covers only the calling thread's copies: a
// __syncthreads() after it makes every thread's data visible to the block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "deepshock/core/config.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"

namespace deepshock::mem {

#if DEEPSHOCK_SIM
namespace detail {
/// The simulator faults on a misaligned vector access, as the GPU does.
inline void check_aligned(std::uintptr_t address, std::size_t bytes, const char* what) {
  if (address % bytes != 0)
    sim::detail::fail(std::string(what) + ": misaligned address (needs " + std::to_string(bytes) + "-byte alignment)");
}
}  // namespace detail
#endif

/// 16-byte copy between 16-byte aligned addresses.
DEEPSHOCK_DEVICE void copy16(void* dst, const void* src) {
#if DEEPSHOCK_SIM
  detail::check_aligned(reinterpret_cast<std::uintptr_t>(dst), 16, "mem::copy16 destination");
  detail::check_aligned(reinterpret_cast<std::uintptr_t>(src), 16, "mem::copy16 source");
  std::memcpy(dst, src, 16);
#else
  *static_cast<uint4*>(dst) = *static_cast<const uint4*>(src);
#endif
}

/// 16-byte copy from global memory that bypasses L1 (ld.global.cg), for data that other blocks
/// of the running kernel wrote (published with __threadfence and an atomic): a line this SM
/// cached earlier must not be read stale.
DEEPSHOCK_DEVICE void load16_cg(void* dst, const void* src) {
#if DEEPSHOCK_SIM
  copy16(dst, src);
#else
  *static_cast<uint4*>(dst) = __ldcg(static_cast<const uint4*>(src));
#endif
}

/// 16 bytes from a 16-byte aligned address, or zeros when `src` is null.
DEEPSHOCK_DEVICE uint4 load16_or_zero(const void* src) {
  uint4 v = make_uint4(0u, 0u, 0u, 0u);
  if (src != nullptr) copy16(&v, src);
  return v;
}

/// Two consecutive 16-bit values (4-byte aligned) as one fragment register; the lower
/// address goes to the lower half.
DEEPSHOCK_DEVICE std::uint32_t lds32(const std::uint16_t* p) {
#if DEEPSHOCK_SIM
  detail::check_aligned(reinterpret_cast<std::uintptr_t>(p), 4, "mem::lds32");
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#else
  return *reinterpret_cast<const std::uint32_t*>(p);
#endif
}

/// Asynchronous 16-byte copy global -> shared (cp.async.cg: cached in L2 only, the right
/// choice for streamed weights). `valid` false: the destination is zero-filled and `src` is not
/// read (it must still be a valid address expression; pass any in-range pointer).
DEEPSHOCK_DEVICE void cp_async16(void* smem_dst, const void* gmem_src, bool valid) {
#if DEEPSHOCK_SIM
  sim::detail::async_copy(smem_dst, gmem_src, 16, valid ? 16u : 0u);
#elif DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 800
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(src_bytes) : "memory");
#elif DEEPSHOCK_DEVICE_PASS
  (void)smem_dst;
  (void)gmem_src;
  (void)valid;
  __trap();  // cp.async needs sm_80 or newer
#else
  (void)smem_dst;
  (void)gmem_src;
  (void)valid;
#endif
}

/// Asynchronous 8-byte copy global -> shared (cp.async.ca: 8-byte copies cannot bypass L1), for
/// small per-tile data such as a k-tile's zero points. `valid` as in cp_async16; both addresses
/// 8-byte aligned.
DEEPSHOCK_DEVICE void cp_async8(void* smem_dst, const void* gmem_src, bool valid) {
#if DEEPSHOCK_SIM
  sim::detail::async_copy(smem_dst, gmem_src, 8, valid ? 8u : 0u);
#elif DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 800
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  const int src_bytes = valid ? 8 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(src_bytes) : "memory");
#elif DEEPSHOCK_DEVICE_PASS
  (void)smem_dst;
  (void)gmem_src;
  (void)valid;
  __trap();  // cp.async needs sm_80 or newer
#else
  (void)smem_dst;
  (void)gmem_src;
  (void)valid;
#endif
}

/// Closes the group of the copies issued since the last commit (cp.async.commit_group).
DEEPSHOCK_DEVICE void cp_async_commit() {
#if DEEPSHOCK_SIM
  sim::detail::async_commit();
#elif DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

/// Waits until at most N of this thread's committed groups are pending (cp.async.wait_group N).
template <int N>
DEEPSHOCK_DEVICE void cp_async_wait() {
  static_assert(N >= 0 && N < 8, "deepshock::mem::cp_async_wait: N must be in [0, 8).");
#if DEEPSHOCK_SIM
  sim::detail::async_wait(static_cast<unsigned>(N));
#elif DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

}  // namespace deepshock::mem
#endif  // DEEPSHOCK_HAS_KERNELS
