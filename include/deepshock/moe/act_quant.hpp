// deepshock/moe/act_quant.hpp — dynamic per-row int8 quantization of activations, for W8A8
// codecs (quant::Int8ChannelA8): the layer quantizes x before GEMM 1 and h before GEMM 2.
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
#include <cstdint>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"

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

}  // namespace kernels

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

}  // namespace deepshock::moe
#endif  // DEEPSHOCK_HAS_KERNELS
