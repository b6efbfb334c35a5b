// deepshock/platform/mma.hpp — the tensor-core instruction wrappers mma.sync m16n8k16 (bf16 /
// fp16), mma.sync m16n8k32 (s8 with int32 accumulation; FP8 E4M3 with fp32) and ldmatrix (the
// shared-memory load that produces their fragments).
//
// D[16x8] = A[16x16] * B[16x8] + C[16x8]; A row-major, B column-major, inputs bf16 or fp16,
// accumulation in fp32. Each of the 32 lanes holds fragments (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type"); with g = lane / 4 and t = lane % 4:
//   A: 4 x b32 = 8 halves a0..a7:  row = g + 8*((i / 2) % 2), col = 2t + (i % 2) + 8*(i / 4)
//   B: 2 x b32 = 4 halves b0..b3:  k   = 2t + (i % 2) + 8*(i / 2),          n = g
//   C/D: 4 floats c0..c3:          row = g + 8*(i / 2),           col = 2t + (i % 2)
// The lower 16 bits of a b32 register hold the element with the lower index.
//
// D[16x8] = A[16x32] * B[32x8] + C[16x8] for s8 inputs (m16n8k32, sm_80+), int32 accumulation
// (exact: no saturation is requested, and the callers' sums stay far below 2^31):
//   A: 4 x b32 = 16 bytes a0..a15:  row = g + 8*((i / 4) % 2), col = 4t + (i % 4) + 16*(i / 8)
//   B: 2 x b32 = 8 bytes b0..b7:    k   = 4t + (i % 4) + 16*(i / 4),        n = g
//   C/D: 4 x int32, laid out as the fp32 C/D above.
// The lowest byte of a b32 register holds the element with the lowest index, so ldmatrix (below)
// of 16-byte rows of int8 gives A fragments as it gives 16-bit ones.
//
// D[16x8] = A[16x32] * B[32x8] + C[16x8] for FP8 E4M3 inputs (m16n8k32 e4m3, sm_89+): the s8
// fragment layout above, fp32 C/D. Every product of two E4M3 values is exact in fp32 (at most 8
// significant bits); the model sums them in k order with fp32 adds. The hardware's FP8
// accumulation keeps fewer bits than fp32 (DeepSeek-V3 measured about 14 on Hopper), which is
// why FP8 GEMMs promote their partial sums to fp32 registers every 128 of K.
//
// Under nvcc (sm_80+) the wrapper issues the PTX instruction; in the simulator it is a
// warp-synchronous operation whose model gathers the fragments, multiplies with fp32 fused
// multiply-adds in k order, and scatters D. Hardware accumulation order is unspecified, so
// tests compare with a tolerance, not bitwise.
//
// ldmatrix<Count> (PTX ldmatrix.sync.aligned.m8n8.x{1,2,4}.shared.b16, sm_75+) loads Count 8x8
// matrices of 16-bit elements for a warp: lane l names row l % 8 of matrix l / 8 (16 contiguous
// bytes, 16-byte aligned, in shared memory; lanes 8 * Count and above name nothing), and lane l
// receives in r[i] the 32-bit word l % 4 of row l / 4 of matrix i: exactly an A or B fragment
// register above, when the matrix rows are the fragment's rows (A) or its n columns (B, stored
// K-contiguous). One instruction replaces Count 32-bit shared loads per lane. The simulator's
// model gathers the rows once all 32 lanes have arrived, so it is exact.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/platform/cuda.hpp"

namespace deepshock::arch {

/// Row and column of one fragment element.
struct FragCoord {
  int row;
  int col;
};

/// Element i (0..7) of lane's A fragment.
DEEPSHOCK_HOST_DEVICE constexpr FragCoord mma_a_coord(int lane, int i) {
  return {lane / 4 + 8 * ((i / 2) % 2), 2 * (lane % 4) + (i % 2) + 8 * (i / 4)};
}
/// Element i (0..3) of lane's B fragment, as (k, n).
DEEPSHOCK_HOST_DEVICE constexpr FragCoord mma_b_coord(int lane, int i) { return {2 * (lane % 4) + (i % 2) + 8 * (i / 2), lane / 4}; }
/// Element i (0..15) of lane's A fragment of the s8 m16n8k32 shape.
DEEPSHOCK_HOST_DEVICE constexpr FragCoord mma_s8_a_coord(int lane, int i) {
  return {lane / 4 + 8 * ((i / 4) % 2), 4 * (lane % 4) + (i % 4) + 16 * (i / 8)};
}
/// Element i (0..7) of lane's B fragment of the s8 m16n8k32 shape, as (k, n).
DEEPSHOCK_HOST_DEVICE constexpr FragCoord mma_s8_b_coord(int lane, int i) { return {4 * (lane % 4) + (i % 4) + 16 * (i / 4), lane / 4}; }
/// Element i (0..3) of lane's C/D fragment.
DEEPSHOCK_HOST_DEVICE constexpr FragCoord mma_c_coord(int lane, int i) { return {lane / 4 + 8 * (i / 2), 2 * (lane % 4) + (i % 2)}; }

/// Packs two 16-bit values into a b32 fragment register (`lo` holds the lower index).
template <class T>
DEEPSHOCK_HOST_DEVICE std::uint32_t pack2(T lo, T hi) {
  return static_cast<std::uint32_t>(lo.bits) | (static_cast<std::uint32_t>(hi.bits) << 16);
}

namespace detail {
template <class T>
inline constexpr bool mma_input_v = std::is_same_v<T, bf16> || std::is_same_v<T, fp16>;

#if DEEPSHOCK_SIM
struct MmaIn {
  const std::uint32_t* a;
  const std::uint32_t* b;
  const float* c;
};

template <class T>
inline float half_to_float(std::uint32_t reg, int which) {
  return T::from_bits(static_cast<decltype(T{}.bits)>(which ? reg >> 16 : reg & 0xFFFFu)).to_float();
}

/// CPU model of the instruction, run once per warp when all 32 lanes have arrived.
template <class T>
inline void mma_m16n8k16_model(sim::detail::Thread* const* lanes, unsigned mask) {
  if (mask != 0xffffffffu) sim::detail::fail("mma.sync m16n8k16: all 32 lanes must take part (mask " + sim::detail::hex(mask) + ")");
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const auto& in = *static_cast<const MmaIn*>(lanes[lane]->in);
    for (int i = 0; i < 8; ++i) {
      const FragCoord p = mma_a_coord(lane, i);
      A[p.row][p.col] = half_to_float<T>(in.a[i / 2], i % 2);
    }
    for (int i = 0; i < 4; ++i) {
      const FragCoord p = mma_b_coord(lane, i);
      B[p.row][p.col] = half_to_float<T>(in.b[i / 2], i % 2);
    }
    for (int i = 0; i < 4; ++i) {
      const FragCoord p = mma_c_coord(lane, i);
      C[p.row][p.col] = in.c[i];
    }
  }
  // Every lane's inputs are read before any output is written: D may alias C.
  for (int lane = 0; lane < 32; ++lane) {
    float* d = static_cast<float*>(lanes[lane]->out);
    for (int i = 0; i < 4; ++i) {
      const FragCoord p = mma_c_coord(lane, i);
      float acc = C[p.row][p.col];
      for (int k = 0; k < 16; ++k) acc = std::fma(A[p.row][k], B[k][p.col], acc);
      d[i] = acc;
    }
  }
}

struct MmaS8In {
  const std::uint32_t* a;
  const std::uint32_t* b;
  const std::int32_t* c;
};

/// Byte `which` (0 = lowest) of a register as a signed 8-bit value.
inline int s8_of(std::uint32_t reg, int which) { return static_cast<std::int8_t>(static_cast<std::uint8_t>(reg >> (8 * which))); }

/// Byte `which` (0 = lowest) of a register as an E4M3 value (exact in float; 0x7F / 0xFF: NaN).
inline float e4m3_of(std::uint32_t reg, int which) { return fp8_e4m3::from_bits(static_cast<std::uint8_t>(reg >> (8 * which))).to_float(); }

struct MmaF8In {
  const std::uint32_t* a;
  const std::uint32_t* b;
  const float* c;
};

/// Gathers the m16n8k32 fragments of 8-bit inputs from all 32 lanes (`In`: the lanes' inputs),
/// each byte decoded by of(register, byte): A [16][32], B [32][8] and C [16][8].
template <class In, class V, class Acc, class Of>
inline void gather_m16n8k32(sim::detail::Thread* const* lanes, V (&A)[16][32], V (&B)[32][8], Acc (&C)[16][8], Of of) {
  for (int lane = 0; lane < 32; ++lane) {
    const auto& in = *static_cast<const In*>(lanes[lane]->in);
    for (int i = 0; i < 16; ++i) {
      const FragCoord p = mma_s8_a_coord(lane, i);
      A[p.row][p.col] = of(in.a[i / 4], i % 4);
    }
    for (int i = 0; i < 8; ++i) {
      const FragCoord p = mma_s8_b_coord(lane, i);
      B[p.row][p.col] = of(in.b[i / 4], i % 4);
    }
    for (int i = 0; i < 4; ++i) {
      const FragCoord p = mma_c_coord(lane, i);
      C[p.row][p.col] = in.c[i];
    }
  }
}

/// CPU model of mma.sync m16n8k32 s8: exact integer sums, wrapping as the hardware's adder does.
inline void mma_m16n8k32_s8_model(sim::detail::Thread* const* lanes, unsigned mask) {
  if (mask != 0xffffffffu) sim::detail::fail("mma.sync m16n8k32: all 32 lanes must take part (mask " + sim::detail::hex(mask) + ")");
  int A[16][32], B[32][8];
  std::int32_t C[16][8];
  gather_m16n8k32<MmaS8In>(lanes, A, B, C, s8_of);
  for (int lane = 0; lane < 32; ++lane) {  // every input is read before any output (D may alias C)
    auto* d = static_cast<std::int32_t*>(lanes[lane]->out);
    for (int i = 0; i < 4; ++i) {
      const FragCoord p = mma_c_coord(lane, i);
      std::uint32_t acc = static_cast<std::uint32_t>(C[p.row][p.col]);  // unsigned: wrapping, not UB
      for (int k = 0; k < 32; ++k) acc += static_cast<std::uint32_t>(A[p.row][k] * B[k][p.col]);
      d[i] = static_cast<std::int32_t>(acc);
    }
  }
}

/// CPU model of mma.sync m16n8k32 e4m3: exact products, fp32 sums in k order.
inline void mma_m16n8k32_e4m3_model(sim::detail::Thread* const* lanes, unsigned mask) {
  if (mask != 0xffffffffu) sim::detail::fail("mma.sync m16n8k32 e4m3: all 32 lanes must take part (mask " + sim::detail::hex(mask) + ")");
  float A[16][32], B[32][8], C[16][8];
  gather_m16n8k32<MmaF8In>(lanes, A, B, C, e4m3_of);
  for (int lane = 0; lane < 32; ++lane) {  // every input is read before any output (D may alias C)
    float* d = static_cast<float*>(lanes[lane]->out);
    for (int i = 0; i < 4; ++i) {
      const FragCoord p = mma_c_coord(lane, i);
      float acc = C[p.row][p.col];
      for (int k = 0; k < 32; ++k) acc = std::fma(A[p.row][k], B[k][p.col], acc);  // the product is exact: one rounding per add
      d[i] = acc;
    }
  }
}

/// CPU model of ldmatrix .x<Count>: lane l's `in` is its row address, `out` its Count words.
template <int Count>
inline void ldmatrix_model(sim::detail::Thread* const* lanes, unsigned mask) {
  if (mask != 0xffffffffu) sim::detail::fail("ldmatrix: all 32 lanes must take part (mask " + sim::detail::hex(mask) + ")");
  const auto* smem_lo = lanes[0]->block->dyn_smem;
  const auto* smem_hi = smem_lo + lanes[0]->block->dyn_smem_bytes;
  for (int src = 0; src < 8 * Count; ++src) {
    const auto* row = static_cast<const unsigned char*>(lanes[src]->in);
    if (smem_lo == nullptr || row < smem_lo || row + 16 > smem_hi)
      sim::detail::fail("ldmatrix: lane " + std::to_string(src) + "'s row must lie in the block's dynamic shared memory");
    const auto addr = reinterpret_cast<std::uintptr_t>(row);
    if (addr % 16 != 0)
      sim::detail::fail("ldmatrix: lane " + std::to_string(src) +
                        "'s row address is not 16-byte aligned (address mod 16 = " + std::to_string(addr % 16) + ")");
  }
  // All rows are read before any result is written.
  std::uint32_t words[4][32];
  for (int i = 0; i < Count; ++i)
    for (int lane = 0; lane < 32; ++lane)
      std::memcpy(&words[i][lane], static_cast<const unsigned char*>(lanes[8 * i + lane / 4]->in) + 4 * (lane % 4), 4);
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < Count; ++i) static_cast<std::uint32_t*>(lanes[lane]->out)[i] = words[i][lane];
}
#endif
}  // namespace detail

#if DEEPSHOCK_HAS_KERNELS
/// D = A * B + C for one warp (all 32 lanes must call it together). `d` may alias `c`.
template <class T>
DEEPSHOCK_DEVICE void mma_m16n8k16(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2], const float (&c)[4]) {
  static_assert(detail::mma_input_v<T>, "deepshock::arch::mma_m16n8k16 takes bf16 or fp16 inputs.");
#if DEEPSHOCK_SIM
  detail::MmaIn in{a, b, c};
  float out[4];
  sim::detail::warp_sync_op(0xffffffffu, &detail::mma_m16n8k16_model<T>, &in, out, "mma.sync.m16n8k16");
  for (int i = 0; i < 4; ++i) d[i] = out[i];
#elif DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, bf16>) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
  }
#elif DEEPSHOCK_DEVICE_PASS
  (void)d;
  (void)a;
  (void)b;
  (void)c;
  __trap();  // mma.sync m16n8k16 needs sm_80 or newer
#else
  (void)d;
  (void)a;
  (void)b;
  (void)c;
#endif
}

/// D = A * B + C for one warp, s8 inputs and int32 accumulators (all 32 lanes together; `d` may
/// alias `c`). Layouts in the file comment.
DEEPSHOCK_DEVICE void mma_m16n8k32_s8(std::int32_t (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                                      const std::int32_t (&c)[4]) {
#if DEEPSHOCK_SIM
  detail::MmaS8In in{a, b, c};
  std::int32_t out[4];
  sim::detail::warp_sync_op(0xffffffffu, &detail::mma_m16n8k32_s8_model, &in, out, "mma.sync.m16n8k32.s8");
  for (int i = 0; i < 4; ++i) d[i] = out[i];
#elif DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]));
#elif DEEPSHOCK_DEVICE_PASS
  (void)d;
  (void)a;
  (void)b;
  (void)c;
  __trap();  // mma.sync m16n8k32 s8 needs sm_80 or newer
#else
  (void)d;
  (void)a;
  (void)b;
  (void)c;
#endif
}

/// D = A * B + C for one warp, FP8 E4M3 inputs and fp32 accumulators (all 32 lanes together;
/// `d` may alias `c`); sm_89 or newer. Layouts in the file comment.
DEEPSHOCK_DEVICE void mma_m16n8k32_e4m3(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2], const float (&c)[4]) {
#if DEEPSHOCK_SIM
  detail::MmaF8In in{a, b, c};
  float out[4];
  sim::detail::warp_sync_op(0xffffffffu, &detail::mma_m16n8k32_e4m3_model, &in, out, "mma.sync.m16n8k32.e4m3");
  for (int i = 0; i < 4; ++i) d[i] = out[i];
#elif DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 890
  asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#elif DEEPSHOCK_DEVICE_PASS
  (void)d;
  (void)a;
  (void)b;
  (void)c;
  __trap();  // mma.sync m16n8k32 e4m3 needs sm_89 or newer
#else
  (void)d;
  (void)a;
  (void)b;
  (void)c;
#endif
}

/// Loads Count (1, 2 or 4) 8x8 matrices of 16-bit elements from shared memory into fragment
/// registers (layout in the file comment). All 32 lanes call it together; `row` is this lane's
/// row address (ignored for lanes 8 * Count and above, which may pass any pointer).
template <int Count>
DEEPSHOCK_DEVICE void ldmatrix(std::uint32_t (&r)[Count], const void* row) {
  static_assert(Count == 1 || Count == 2 || Count == 4, "deepshock::arch::ldmatrix loads 1, 2 or 4 matrices.");
#if DEEPSHOCK_SIM
  std::uint32_t out[Count];
  sim::detail::warp_sync_op(0xffffffffu, &detail::ldmatrix_model<Count>, row, out, "ldmatrix");
  for (int i = 0; i < Count; ++i) r[i] = out[i];
#elif DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 750
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  if constexpr (Count == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(addr));
  } else if constexpr (Count == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
  }
#elif DEEPSHOCK_DEVICE_PASS
  (void)r;
  (void)row;
  __trap();  // ldmatrix needs sm_75 or newer
#else
  (void)r;
  (void)row;
#endif
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::arch
