// deepshock/platform/wgmma.hpp — Hopper's warpgroup tensor-core instructions (wgmma, sm_90a)
// with both operands in shared memory, for 16-bit (bf16, fp16) and E4M3 inputs and fp32
// accumulators.
//
// One instruction computes D[64 x N] += A[64 x K] * B[N x K]^T for a warpgroup (4 warps, 128
// consecutive threads, all taking part), K = 32 bytes of inputs: 16 bf16 / fp16 values
// (wgmma_m64k16) or 32 E4M3 values (wgmma_m64k32_e4m3). Both operands are K-major tiles in the
// 128-byte swizzled layout (PTX ISA "Shared Memory Matrix Layout", swizzle mode 128B): every row
// of the tile is 128 bytes (64 16-bit or 128 E4M3 values of K), groups of 8 rows are 1024 bytes
// apart, and the 16-byte chunk c of row r is stored at chunk c ^ (r % 8). The swizzle is a
// function of the shared-memory address bits (bits [4,7) ^= bits [7,10)), so a tile must start
// 1024-byte aligned; the K slice kk of a 128-byte K stage starts kk * 32 bytes into row 0.
// sw128_offset gives the byte offset at which to store (row, chunk) of a tile. (8-bit inputs
// have no transposed form: both operands are K-major, as here.)
//
// D fragment (N / 2 floats per thread), with w = warp in the warpgroup, g = lane / 4,
// t = lane % 4: element i is row 16w + g + 8 * ((i / 2) % 2), column 8 * (i / 4) + 2t + (i % 2)
// — per warp, the mma.sync m16n8 C fragment (platform/mma.hpp) repeated over N / 8 columns.
//
// Protocol (as in PTX): data written to shared memory by threads or cp.async must be made
// visible to the tensor cores' async proxy (fence_proxy_async, then a barrier) before a wgmma
// reads it; wgmma_fence() before the first wgmma of a batch (after the accumulators were
// written by ordinary instructions); wgmma_commit() closes a group; wgmma_wait<N>() returns
// when at most N of the warpgroup's groups are in flight. Until then the accumulators are
// undefined and the operand tiles must not change. wgmma_fence_operand(acc) around each batch
// (before the fence, after the wait) keeps the compiler from moving accumulator accesses across.
//
// Availability: the instructions exist only for sm_90a (CMAKE_CUDA_ARCHITECTURES=90a).
// DEEPSHOCK_WGMMA is 1 where they can be used — the device pass for sm_90a and the simulator —
// and kernels choose another path otherwise (the grouped GEMM falls back to mma.sync).
// Simulator model: the instruction is computed per thread from shared memory with fp32 fused
// multiply-adds in k order at the issue (E4M3 products are exact in fp32: one rounding per add;
// the hardware's FP8 sums keep fewer bits, which callers' tolerances allow for); the accumulators hold NaN until the wait, which reads
// the thread's operands again and fails the launch if one changed in flight. Operands must lie
// in the block's dynamic shared memory; the model also checks the tile alignment rules above.
// The proxy fence is a no-op in the model (a missing one is not detected).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#endif

#if DEEPSHOCK_SIM || (DEEPSHOCK_DEVICE_PASS && defined(__CUDA_ARCH_FEAT_SM90_ALL))
#define DEEPSHOCK_WGMMA 1
#else
#define DEEPSHOCK_WGMMA 0
#endif

namespace deepshock::arch {

/// Byte offset of the 16-byte chunk `chunk` (0..7) of row `row` in a 128-byte swizzled tile.
DEEPSHOCK_HOST_DEVICE constexpr int sw128_offset(int row, int chunk) { return row * 128 + ((chunk ^ (row & 7)) << 4); }

#if DEEPSHOCK_HAS_KERNELS

/// `p` rounded up to the next 1024-byte boundary of the shared-memory window (reserve 1024 bytes
/// of slack in the dynamic shared memory).
DEEPSHOCK_DEVICE unsigned char* align_smem_1024(unsigned char* p) {
#if DEEPSHOCK_SIM
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
#else
  const std::uint32_t a = static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
#endif
  return p + ((1024 - (a & 1023)) & 1023);
}

namespace detail {
template <class T>
inline constexpr bool wgmma_input_v = std::is_same_v<T, bf16> || std::is_same_v<T, fp16>;
/// Values of K per instruction: 32 bytes of the input type E (bf16, fp16 or fp8_e4m3).
template <class E>
inline constexpr int kWgmmaK = 32 / static_cast<int>(sizeof(E));

#if DEEPSHOCK_SIM
/// Element (row, k) of a swizzled K-major tile of E starting at `tile` (a K slice start).
template <class E>
inline float sw128_load(const void* tile, int row, int k) {
  const std::uintptr_t logical = reinterpret_cast<std::uintptr_t>(tile) +
                                 static_cast<std::uintptr_t>((row / 8) * 1024 + (row % 8) * 128 + static_cast<int>(sizeof(E)) * k);
  const std::uintptr_t physical = logical ^ (((logical >> 7) & 7u) << 4);
  // Byte loads, not a 2-byte memcpy: under TSan a memcpy is a range access, several times
  // dearer than two plain ones (the model reads every operand twice per thread).
  const auto* q = reinterpret_cast<const unsigned char*>(physical);
  static_assert(std::endian::native == std::endian::little, "the simulator stores 16-bit values little-endian");
  if constexpr (sizeof(E) == 1) return E::from_bits(q[0]).to_float();
  else return E::from_bits(static_cast<std::uint16_t>(q[0] | (q[1] << 8))).to_float();
}

/// The operands this thread's part of the instruction reads: A rows 16w + g and 16w + g + 8, then
/// B columns 8j + 2t + c (j < N / 8, c < 2), K values each (fragment layout in the file comment;
/// g = lane / 4, t = lane % 4).
template <class E, int N>
inline constexpr int kWgmmaOperands = (2 + N / 4) * kWgmmaK<E>;

template <class E, int N>
inline void wgmma_gather(const sim::detail::Thread::AsyncMma& op, unsigned linear, float* v) {
  constexpr int K = kWgmmaK<E>;
  const int w = static_cast<int>((linear / 32) % 4), lane = static_cast<int>(linear % 32);
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < K; ++k) v[h * K + k] = sw128_load<E>(op.a, 16 * w + lane / 4 + 8 * h, k);
  for (int c = 0; c < N / 4; ++c)
    for (int k = 0; k < K; ++k) v[(2 + c) * K + k] = sw128_load<E>(op.b, 8 * (c / 2) + 2 * (lane % 4) + c % 2, k);
}

/// This thread's part of D = A * B^T + D_in from its gathered operands: element i is row half
/// (i / 2) % 2, column (i / 4) * 2 + i % 2 of the gather, fused multiply-adds in k order.
template <int N, int K>
inline void wgmma_compute(const float* v, const float* in, float* result) {
  for (int i = 0; i < N / 2; ++i) {
    const float* a = v + ((i / 2) % 2) * K;
    const float* b = v + (2 + (i / 4) * 2 + i % 2) * K;
    float acc = in[i];
    for (int k = 0; k < K; ++k) acc = std::fma(a[k], b[k], acc);
    result[i] = acc;
  }
}

inline void wgmma_check_operand(const void* p, int rows, const char* which) {
  const sim::detail::Thread& t = sim::detail::current_thread();
  const auto* lo = t.block->dyn_smem;
  const auto* q = static_cast<const unsigned char*>(p);
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
  const std::string name = std::string("wgmma: operand ") + which;
  if (lo == nullptr || q < lo || q + (rows / 8 - 1) * 1024 + 7 * 128 + 128 - (a & 127) > lo + t.block->dyn_smem_bytes)
    sim::detail::fail(name + " must lie in the block's dynamic shared memory (64 / N rows of 128 bytes)");
  if (a % 16 != 0) sim::detail::fail(name + " must be 16-byte aligned");
  if ((a & 0x380u) != 0) sim::detail::fail(name + " must start in row 0 of a 1024-byte aligned swizzle atom");
  if ((a & 127u) > 96) sim::detail::fail(name + ": the 32-byte K slice must lie inside the 128-byte row");
}

template <class E, int N>
inline void wgmma_issue(float* d, const void* a, const void* b) {
  sim::detail::Thread& t = sim::detail::current_thread();
  const auto bd = t.block->block_dim;
  if ((static_cast<unsigned long long>(bd.x) * bd.y * bd.z) % 128 != 0)
    sim::detail::fail("wgmma: the block must consist of whole warpgroups (128 threads)");
  wgmma_check_operand(a, 64, "A");
  wgmma_check_operand(b, N, "B");
  sim::detail::Thread::AsyncMma op{d, a, b, t.mma_committed, &wgmma_gather<E, N>, {}, {}};
  // The input accumulators: the result of the newest instruction in flight on the same
  // registers (in-order accumulation, as the hardware guarantees for one shape), else d.
  const sim::detail::Thread::AsyncMma* prev = nullptr;
  for (const auto& o : t.async_mmas)
    if (o.d == d) prev = &o;
  float in[N / 2];
  std::memcpy(in, prev != nullptr ? prev->out.data() : d, sizeof in);
  op.operands.resize(kWgmmaOperands<E, N>);
  wgmma_gather<E, N>(op, t.linear, op.operands.data());
  op.out.resize(N / 2);
  wgmma_compute<N, kWgmmaK<E>>(op.operands.data(), in, op.out.data());
  for (int i = 0; i < N / 2; ++i) d[i] = std::numeric_limits<float>::quiet_NaN();
  t.async_mmas.push_back(std::move(op));
}

inline void wgmma_wait_model(unsigned n) {
  sim::detail::Thread& t = sim::detail::current_thread();
  const unsigned limit = t.mma_committed > n ? t.mma_committed - n : 0u;
  std::size_t kept = 0;
  std::vector<float> again;
  for (std::size_t i = 0; i < t.async_mmas.size(); ++i) {
    auto& o = t.async_mmas[i];
    if (o.group < limit) {
      again.assign(o.operands.size(), 0.0f);
      o.gather(o, t.linear, again.data());
      if (std::memcmp(again.data(), o.operands.data(), again.size() * sizeof(float)) != 0)
        sim::detail::fail("wgmma: a shared-memory operand changed while the instruction was in flight (refilled before wgmma.wait_group?)");
      std::memcpy(o.d, o.out.data(), o.out.size() * sizeof(float));
    } else {
      if (kept != i) t.async_mmas[kept] = std::move(o);
      ++kept;
    }
  }
  t.async_mmas.resize(kept);
  for (const auto& o : t.async_mmas)  // registers of instructions still in flight stay undefined
    for (std::size_t i = 0; i < o.out.size(); ++i) o.d[i] = std::numeric_limits<float>::quiet_NaN();
}
#elif DEEPSHOCK_WGMMA
/// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes apart
/// (stride byte offset 1024; the leading byte offset is unused for this layout and set to 1).
DEEPSHOCK_DEVICE std::uint64_t sw128_descriptor(const void* p) {
  const std::uint32_t a = static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
  return static_cast<std::uint64_t>((a & 0x3FFFFu) >> 4) | (std::uint64_t{1} << 16) | (std::uint64_t{1024 >> 4} << 32) |
         (std::uint64_t{1} << 62);
}

// The instruction with N / 2 accumulator registers d[...] and descriptors da, db; KT names K and
// the types ("k16.f32.bf16.bf16"); scale-d = 1 (accumulate), no negation; TR: ", 0, 0" (no
// transpose, both operands K-major) for 16-bit inputs, "" for 8-bit ones (which have no such
// operands).
#define DEEPSHOCK_WGMMA_M64N64(KT, TR)                                                                                                   \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                                              \
               "wgmma.mma_async.sync.aligned.m64n64" KT " {"                                                                             \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                                  \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"                                          \
               "}, %32, %33, p, 1, 1" TR ";\n}\n"                                                                                        \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), \
                 "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]),    \
                 "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),    \
                 "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])                                                                      \
               : "l"(da), "l"(db), "r"(1))

#define DEEPSHOCK_WGMMA_M64N128(KT, TR)                                                                                                  \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                                              \
               "wgmma.mma_async.sync.aligned.m64n128" KT " {"                                                                            \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                                  \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                                        \
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                                        \
               "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"                                          \
               "}, %64, %65, p, 1, 1" TR ";\n}\n"                                                                                        \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), \
                 "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]),    \
                 "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),    \
                 "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),    \
                 "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]),    \
                 "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]),    \
                 "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])     \
               : "l"(da), "l"(db), "r"(1))
#endif
}  // namespace detail

/// D[64 x N] += A[64 x 16] * B[N x 16]^T for the calling warpgroup (see the file comment);
/// `a` and `b` point at the k16 slice of swizzled tiles in shared memory. N is 64 or 128.
template <class T, int N>
DEEPSHOCK_DEVICE void wgmma_m64k16(float (&d)[N / 2], const void* a, const void* b) {
  static_assert(detail::wgmma_input_v<T>, "deepshock::arch::wgmma_m64k16 takes bf16 or fp16 inputs.");
  static_assert(N == 64 || N == 128, "deepshock::arch::wgmma_m64k16: N must be 64 or 128 (the widths wrapped so far).");
#if DEEPSHOCK_SIM
  detail::wgmma_issue<T, N>(d, a, b);
#elif DEEPSHOCK_WGMMA
  const std::uint64_t da = detail::sw128_descriptor(a), db = detail::sw128_descriptor(b);
  if constexpr (std::is_same_v<T, bf16>) {
    if constexpr (N == 64) DEEPSHOCK_WGMMA_M64N64("k16.f32.bf16.bf16", ", 0, 0");
    else DEEPSHOCK_WGMMA_M64N128("k16.f32.bf16.bf16", ", 0, 0");
  } else {
    if constexpr (N == 64) DEEPSHOCK_WGMMA_M64N64("k16.f32.f16.f16", ", 0, 0");
    else DEEPSHOCK_WGMMA_M64N128("k16.f32.f16.f16", ", 0, 0");
  }
#elif DEEPSHOCK_DEVICE_PASS
  (void)d;
  (void)a;
  (void)b;
  __trap();  // wgmma needs sm_90a; callers check DEEPSHOCK_WGMMA
#else
  (void)d;
  (void)a;
  (void)b;
#endif
}

/// D[64 x N] += A[64 x 32] * B[N x 32]^T of E4M3 inputs (fp32 accumulators) for the calling
/// warpgroup; `a` and `b` point at the 32-byte K slice of swizzled tiles of E4M3 codes in shared
/// memory. N is 64 or 128. Every architecture that has wgmma has FP8 tensor cores.
template <int N>
DEEPSHOCK_DEVICE void wgmma_m64k32_e4m3(float (&d)[N / 2], const void* a, const void* b) {
  static_assert(N == 64 || N == 128, "deepshock::arch::wgmma_m64k32_e4m3: N must be 64 or 128 (the widths wrapped so far).");
#if DEEPSHOCK_SIM
  detail::wgmma_issue<fp8_e4m3, N>(d, a, b);
#elif DEEPSHOCK_WGMMA
  const std::uint64_t da = detail::sw128_descriptor(a), db = detail::sw128_descriptor(b);
  if constexpr (N == 64) DEEPSHOCK_WGMMA_M64N64("k32.f32.e4m3.e4m3", "");
  else DEEPSHOCK_WGMMA_M64N128("k32.f32.e4m3.e4m3", "");
#elif DEEPSHOCK_DEVICE_PASS
  (void)d;
  (void)a;
  (void)b;
  __trap();  // wgmma needs sm_90a; callers check DEEPSHOCK_WGMMA
#else
  (void)d;
  (void)a;
  (void)b;
#endif
}

/// A compiler code-motion barrier on accumulator registers (no instruction): the "memory"
/// clobbers of the wgmma instructions do not order register values, so without it the compiler
/// may move ordinary reads or writes of the accumulators across wgmma_fence / wgmma_wait. Call it
/// on every accumulator array before wgmma_fence() and after the wgmma_wait that completes it.
template <int R>
DEEPSHOCK_DEVICE void wgmma_fence_operand(float (&d)[R]) {
#if DEEPSHOCK_WGMMA && !DEEPSHOCK_SIM
  DEEPSHOCK_UNROLL
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
#else
  (void)d;
#endif
}

/// wgmma.fence: orders earlier register writes (e.g. zeroed accumulators) before the wgmmas.
DEEPSHOCK_DEVICE void wgmma_fence() {
#if DEEPSHOCK_WGMMA && !DEEPSHOCK_SIM
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

/// wgmma.commit_group: the wgmmas issued since the last commit form one group.
DEEPSHOCK_DEVICE void wgmma_commit() {
#if DEEPSHOCK_SIM
  ++sim::detail::current_thread().mma_committed;
#elif DEEPSHOCK_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

/// wgmma.wait_group N: returns when at most N of the warpgroup's committed groups are in flight.
template <int N>
DEEPSHOCK_DEVICE void wgmma_wait() {
  static_assert(N >= 0 && N < 8, "deepshock::arch::wgmma_wait: N must be in [0, 8).");
#if DEEPSHOCK_SIM
  detail::wgmma_wait_model(static_cast<unsigned>(N));
#elif DEEPSHOCK_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

/// fence.proxy.async.shared::cta: makes this thread's shared-memory writes (stores, completed
/// cp.async copies) visible to later wgmma operand reads; a barrier then extends it to the block.
DEEPSHOCK_DEVICE void fence_proxy_async_smem() {
#if DEEPSHOCK_WGMMA && !DEEPSHOCK_SIM
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::arch
