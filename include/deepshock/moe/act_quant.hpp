// deepshock/moe/act_quant.hpp — dynamic quantization of activations on the device: per-row int8
// for W8A8 codecs (quant::Int8ChannelA8: the layer quantizes x before GEMM 1 and h before GEMM 2),
// and per-token FP8 E4M3 in 1 x 128 groups (quantize_rows_fp8), the A operand of FP8 GEMMs.
//
// FP8 rule (quant::quantize_fp8_rows is its host twin, bit for bit): per row and group of 128
// columns, s = amax / 448 in fp32 (0 for an all-zero group), q = e4m3(v / s) rounded to nearest
// even and saturating; one warp per (row, group), each lane 4 values.
//
// Rule (the same as quant::quantize_int8_channel, so that the host executor and the reference
// reproduce it bit for bit): for each row, scale = amax(|v|) / 127 in fp32, and
// q = clamp(rne(v / scale), -127, 127) with an fp32 division; a row of zeros gets scale 0 and
// q = 0. Each row is its own: nothing depends on the other rows of the batch.
//
// One warp per row: the lanes stride over the row for the amax, a butterfly max gives every lane
// the same amax (max is exact in any order), then the lanes write the codes. A separate pass over
// x (T x H) and h (assignments x I) rather than a fusion into the GEMM's A load: each A row is read
// by every n-tile of the GEMM, so quantizing there would redo the amax once per n-tile.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/quant/codec.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/warp.hpp"

namespace deepshock::moe {

/// Rows to quantize (device pointers): src [rows, cols] with row stride ld, into q [rows, cols]
/// (row stride cols) and scale [rows].
template <class T>
struct RowQuantArgs {
  const T* src = nullptr;
  long long ld = 0;
  int rows = 0, cols = 0;
  std::int8_t* q = nullptr;
  float* scale = nullptr;
};

/// Rows to quantize to FP8 in 1 x 128 groups (device pointers): src [rows, cols] with row stride
/// ld, into q [rows, cols] (row stride cols) and scale [rows][ceil(cols / 128)].
template <class T>
struct GroupQuantArgs {
  const T* src = nullptr;
  long long ld = 0;
  int rows = 0, cols = 0;
  std::uint8_t* q = nullptr;
  float* scale = nullptr;
};

namespace detail {
/// One value's code for a row scale s > 0. NaN (a row that holds no data: scratch rows of an
/// expert-parallel rank) clamps to a code instead of reaching an undefined float -> int cast.
DEEPSHOCK_HOST_DEVICE std::int8_t act_code(float v, float s) {
  float c = rintf(v / s);
  c = fminf(fmaxf(c, -127.0f), 127.0f);
  return static_cast<std::int8_t>(c);
}
}  // namespace detail

namespace kernels {

/// Per-row int8 quantization (see the file comment): block of Warps warps, one row per warp.
template <class T, int Warps>
DEEPSHOCK_KERNEL void quantize_rows_int8_kernel(RowQuantArgs<T> a) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const long long row = static_cast<long long>(blockIdx.x) * Warps + static_cast<int>(threadIdx.x) / 32;
  pdl::wait();  // the rows belong to the kernel before (x's producer, or GEMM 1)
  pdl::launch_dependents();
  if (row >= a.rows) return;  // whole warps leave together
  const T* src = a.src + row * a.ld;
  float amax = 0.0f;
  for (int c = lane; c < a.cols; c += 32) amax = fmaxf(amax, fabsf(static_cast<float>(src[c])));
  amax = warp::butterfly_reduce(amax, warp::Max{});
  const float s = amax / 127.0f;
  std::int8_t* q = a.q + row * a.cols;
  for (int c = lane; c < a.cols; c += 32) q[c] = s > 0.0f ? detail::act_code(static_cast<float>(src[c]), s) : std::int8_t{0};
  if (lane == 0) a.scale[row] = s;
}

/// Per-token FP8 quantization in 1 x 128 groups (see the file comment): block of Warps warps, one
/// (row, group) per warp; q [rows][cols], scale [rows][ceil(cols / 128)].
template <class T, int Warps>
DEEPSHOCK_KERNEL void quantize_rows_fp8_kernel(GroupQuantArgs<T> a) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const long long groups = (a.cols + 127) / 128;
  const long long job = static_cast<long long>(blockIdx.x) * Warps + static_cast<int>(threadIdx.x) / 32;
  pdl::wait();
  pdl::launch_dependents();
  if (job >= a.rows * groups) return;  // whole warps leave together
  const long long row = job / groups, c0 = (job % groups) * 128;
  const T* src = a.src + row * a.ld;
  float v[4];
  float amax = 0.0f;
  DEEPSHOCK_UNROLL
  for (int j = 0; j < 4; ++j) {
    const long long c = c0 + lane + 32 * j;
    v[j] = c < a.cols ? static_cast<float>(src[c]) : 0.0f;
    amax = fmaxf(amax, fabsf(v[j]));
  }
  amax = warp::butterfly_reduce(amax, warp::Max{});
  const float s = amax / 448.0f;
  std::uint8_t* q = a.q + row * a.cols;
  DEEPSHOCK_UNROLL
  for (int j = 0; j < 4; ++j) {
    const long long c = c0 + lane + 32 * j;
    if (c < a.cols) q[c] = s > 0.0f ? fp8_e4m3(v[j] / s).bits : std::uint8_t{0};
  }
  if (lane == 0) a.scale[job] = s;
}

}  // namespace kernels

/// Launches quantize_rows_fp8_kernel (nothing for no rows). dependent_launch as quantize_rows_int8.
template <class T>
Status quantize_rows_fp8(const GroupQuantArgs<T>& a, rt::stream_t stream, bool dependent_launch = false) {
  if (a.rows <= 0 || a.cols <= 0) return Status::success();
  if (a.src == nullptr || a.q == nullptr || a.scale == nullptr) return Status::invalid_argument("rows", "quantize_rows_fp8: null pointer");
  if (a.ld < a.cols) return Status::invalid_argument("ld", "quantize_rows_fp8: the row stride must be at least cols");
  constexpr int kWarps = 4;
  const long long jobs = static_cast<long long>(a.rows) * ((a.cols + 127) / 128);
  const unsigned blocks = static_cast<unsigned>((jobs + kWarps - 1) / kWarps);
  return launch(kernels::quantize_rows_fp8_kernel<T, kWarps>, {dim3(blocks), dim3(32 * kWarps), 0, stream, dependent_launch}, a);
}

/// Launches quantize_rows_int8_kernel (nothing for no rows). dependent_launch: as a programmatic
/// dependent launch (the kernel waits for earlier work before reading).
template <class T>
Status quantize_rows_int8(const RowQuantArgs<T>& a, rt::stream_t stream, bool dependent_launch = false) {
  if (a.rows <= 0 || a.cols <= 0) return Status::success();
  if (a.src == nullptr || a.q == nullptr || a.scale == nullptr) return Status::invalid_argument("rows", "quantize_rows_int8: null pointer");
  constexpr int kWarps = 4;
  const unsigned blocks = static_cast<unsigned>((a.rows + kWarps - 1) / kWarps);
  return launch(kernels::quantize_rows_int8_kernel<T, kWarps>, {dim3(blocks), dim3(32 * kWarps), 0, stream, dependent_launch}, a);
}

/// The activation quantization a codec's GEMMs read (quant/codec.hpp's traits): per-row int8
/// (W8A8), per-token FP8 in 1 x 128 groups, or none. The layer sizes its workspace and launches
/// the quantization of x and h through this one type.
template <class T, class Codec>
struct ActQuant {
  static constexpr bool kInt8 = quant::act_int8_v<Codec>;
  static constexpr bool kFp8 = quant::act_fp8_v<Codec>;
  static constexpr bool kActive = kInt8 || kFp8;
  using Args = std::conditional_t<kFp8, GroupQuantArgs<T>, RowQuantArgs<T>>;
  using Code = std::remove_pointer_t<decltype(Args::q)>;  ///< int8_t, or uint8_t (E4M3 bits)
  static constexpr const char* kWhat = kFp8 ? "FP8 E4M3 activations per token and 128 inputs" : "int8 activations per token";
  /// The fp32 scales of `rows` rows of `cols` values.
  static constexpr std::size_t scales(std::size_t rows, std::size_t cols) { return kFp8 ? rows * ((cols + 127) / 128) : rows; }
  static Status run(const Args& a, rt::stream_t stream, bool dependent_launch) {
    if constexpr (kFp8) return quantize_rows_fp8(a, stream, dependent_launch);
    else return quantize_rows_int8(a, stream, dependent_launch);
  }
};

}  // namespace deepshock::moe
#endif  // DEEPSHOCK_HAS_KERNELS
