// deepshock/platform/memory.hpp — vector memory accesses of the kernels: 16-byte loads and
// stores (global or shared, 16-byte aligned addresses) and the 32-bit loads of two 16-bit
// values that fill tensor-core fragments. Under nvcc they are single vector instructions; in
// the simulator they copy bytes (no type punning on the host).
#pragma once

#include <cstdint>
#include <cstring>

#include "deepshock/core/config.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"

namespace deepshock::mem {

/// 16-byte copy between 16-byte aligned addresses.
DEEPSHOCK_DEVICE void copy16(void* dst, const void* src) {
#if DEEPSHOCK_SIM
  std::memcpy(dst, src, 16);
#else
  *static_cast<uint4*>(dst) = *static_cast<const uint4*>(src);
#endif
}

/// 16 zero bytes at a 16-byte aligned address.
DEEPSHOCK_DEVICE void zero16(void* dst) {
#if DEEPSHOCK_SIM
  std::memset(dst, 0, 16);
#else
  *static_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
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
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#else
  return *reinterpret_cast<const std::uint32_t*>(p);
#endif
}

}  // namespace deepshock::mem
#endif  // DEEPSHOCK_HAS_KERNELS
