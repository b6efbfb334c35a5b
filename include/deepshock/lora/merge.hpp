// deepshock/lora/merge.hpp — merging one adapter into the base weights and taking it out again:
// W_e += s B_e A_e (merge), W_e -= s B_e A_e (unmerge), per expert, in place, for unquantized
// base weights (bf16, fp16, float). A merged layer serves that one adapter at the base layer's
// cost; the fused path (moe::Layer with lora::LoRA experts) serves many at once.
//
// Rounding contract. Element (n, c) of expert e's delta is
//   d = s * fma(B[n][r-1], A[r-1][c], ... fma(B[n][1], A[1][c], B[n][0] * A[0][c]))
// in fp32 (the k-ascending chain of fused multiply-adds, then one fp32 multiply by s), and the
// weight becomes T(float(W) + d) (merge) or T(float(W) - d) (unmerge), rounded to nearest even
// once. The same bits on every device and in the host mirror (merge_reference), which tests
// compare bitwise. Unmerging after merging gives back W exactly wherever W + d was exact in T,
// and otherwise within one unit in the last place of T at the larger of |W| and |W + d| (the
// rounding of the merge cannot be undone: the bits it dropped are gone). Keep a copy of the base
// weights where exact restoration matters.
//
// Quantized base weights (any codec but quant::None) are refused: the sum would have to be
// requantized, which changes every weight of a group, not just the adapter's share.
#pragma once

#include <cmath>
#include <string>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/lora/adapter.hpp"
#include "deepshock/quant/codec.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/launch.hpp"
#endif

namespace deepshock::lora {

/// One stacked weight matrix to merge into: expert e's logical row n (of `out`) at
/// w + e * expert_stride + n * row_stride, `in` contiguous values; A [experts, rank, in] and
/// B [experts, out, rank] as in AdapterRef.
template <class T>
struct MergeArgs {
  T* w = nullptr;
  long long expert_stride = 0;  ///< elements between experts' matrices; 0 with one expert
  long long row_stride = 0;     ///< elements between logical rows (in, or 2 in for interleaved gate/up)
  int experts = 1;
  int out = 0;
  int in = 0;
  const T* a = nullptr;
  const T* b = nullptr;
  int rank = 0;
  float scaling = 0.0f;
  bool unmerge = false;  ///< subtract instead of add
};

namespace detail {
/// The contract's delta of element (e, n, c).
template <class T>
DEEPSHOCK_HOST_DEVICE float merge_delta(const MergeArgs<T>& m, int e, int n, int c) {
  const T* b = m.b + (static_cast<long long>(e) * m.out + n) * m.rank;
  const T* a = m.a + static_cast<long long>(e) * m.rank * m.in + c;
  float acc = value_to_float(b[0]) * value_to_float(a[0]);
  for (int k = 1; k < m.rank; ++k) acc = fmaf(value_to_float(b[k]), value_to_float(a[static_cast<long long>(k) * m.in]), acc);
  return m.scaling * acc;
}
template <class T>
DEEPSHOCK_HOST_DEVICE void merge_element(const MergeArgs<T>& m, int e, int n, int c) {
  T* w = m.w + e * m.expert_stride + n * m.row_stride + c;
  const float d = merge_delta(m, e, n, c);
  *w = value_from_float<T>(m.unmerge ? value_to_float(*w) - d : value_to_float(*w) + d);
}

template <class T>
inline Status check_merge(const MergeArgs<T>& m) {
  if (m.w == nullptr) return Status::invalid_argument("w", "must not be null");
  if (m.a == nullptr || m.b == nullptr) return Status::invalid_argument(m.a == nullptr ? "a" : "b", "must not be null");
  if (m.experts < 1 || m.experts > 65535)
    return Status::invalid_argument("experts", "must be in [1, 65535], got " + std::to_string(m.experts));
  if (m.out < 1 || m.out > 65535) return Status::invalid_argument("out", "must be in [1, 65535], got " + std::to_string(m.out));
  if (m.in < 1) return Status::invalid_argument("in", "must be >= 1, got " + std::to_string(m.in));
  if (m.rank < 1 || m.rank > kMaxRank)
    return Status::invalid_argument("rank", "must be in [1, " + std::to_string(kMaxRank) + "], got " + std::to_string(m.rank));
  if (m.row_stride < m.in) return Status::invalid_argument("row_stride", "must be >= in (" + std::to_string(m.in) + ")");
  if (m.experts > 1 && m.expert_stride < m.row_stride * m.out)
    return Status::invalid_argument("expert_stride", "must be >= row_stride x out: experts' matrices may not overlap");
  if (!std::isfinite(m.scaling)) return Status::invalid_argument("scaling", "must be finite");
  return Status::success();
}
}  // namespace detail

/// The host mirror of merge (host pointers): the contract's bits, for tests and CPU serving.
template <class Codec = quant::None, class T>
Status merge_reference(const MergeArgs<T>& m) {
  if constexpr (!Codec::kIdentity) {
    return Status::invalid_argument("w",
                                    std::string("the base weights are ") + Codec::kName +
                                        "; merging needs unquantized (bf16, fp16, fp32) weights: serve the adapter unmerged (fused LoRA)");
  } else {
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_merge(m));
    for (int e = 0; e < m.experts; ++e)
      for (int n = 0; n < m.out; ++n)
        for (int c = 0; c < m.in; ++c) detail::merge_element(m, e, n, c);
    return Status::success();
  }
}

#if DEEPSHOCK_HAS_KERNELS
namespace kernels {
inline constexpr int kMergeThreads = 128;
/// One thread per weight element: blockIdx.z the expert, blockIdx.y the row, x the columns.
template <class T>
DEEPSHOCK_KERNEL void merge_kernel(MergeArgs<T> m) {
  const int c = static_cast<int>(blockIdx.x) * kMergeThreads + static_cast<int>(threadIdx.x);
  if (c < m.in) detail::merge_element(m, static_cast<int>(blockIdx.z), static_cast<int>(blockIdx.y), c);
}
}  // namespace kernels

/// Merges (m.unmerge: unmerges) one adapter's matrix into the base weights on the device, in
/// stream order. Codec: the base weights' codec; anything but quant::None is refused.
template <class Codec = quant::None, class T>
Status merge(const MergeArgs<T>& m, rt::stream_t stream) {
  if constexpr (!Codec::kIdentity) {
    return merge_reference<Codec>(m);  // the refusal
  } else {
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_merge(m));
    const unsigned col_blocks = static_cast<unsigned>((m.in + kernels::kMergeThreads - 1) / kernels::kMergeThreads);
    return launch(kernels::merge_kernel<T>,
                  {dim3(col_blocks, static_cast<unsigned>(m.out), static_cast<unsigned>(m.experts)), dim3(kernels::kMergeThreads), 0,
                   stream},
                  m);
  }
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::lora
