// deepshock/policy/pipeline.hpp — compose logits policies into one fused pass.
//
//   using Post = ds::policy::Pipeline<ds::safety::AllowMask, ds::safety::RepetitionPenalty,
//                                     ds::safety::GreenListWatermark>;
//   Post::Params p{allow, penalty, watermark};          // or p.get<1>().penalty = 1.2f;
//   ds::Status st = Post::validate(p, rows, vocab);     // optional: run_pipeline validates too
//   st = ds::policy::run_pipeline<Post>(p, logits, logits, rows, vocab, stream);  // in place
//
// Semantics: element (row, col) becomes Pn(...P2(P1(x))), i.e. `Pipeline::apply` calls
// P1::apply first. Order matters for policies that do not commute (a multiplicative penalty
// and an additive watermark bias, for example). A Pipeline is itself a LogitsPolicy, so
// pipelines nest, and `run_pipeline<P>` accepts any single policy as well.
//
// Params: a small recursive holder (not std::tuple, so it is trivially copyable, usable in
// device code and passed by value as a kernel argument). `get<I>()` returns policy I's Params.
//
// The fused kernel reads each element once and writes it once. Rows map to grid.y (grid-
// stride), columns to grid.x * block.x (grid-stride). When `in` and `out` are 16-byte aligned
// and vocab % 4 == 0 each thread moves float4 vectors (four consecutive columns of one row),
// otherwise single floats. Every element is computed by one thread from its own value and the
// policies' read-only memory, so results are bitwise independent of the launch shape, the
// vector path and the run (deterministic); `out == in` (in place) is allowed, partial
// overlap is not. Nothing allocates and nothing synchronises the host: rows = 0 is a no-op,
// so the call can be captured in a CUDA graph.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/policy/concept.hpp"

namespace deepshock::policy {

namespace detail {

/// Fails to compile, with a readable sentence, when P is not a LogitsPolicy.
template <class P>
struct require_logits_policy {
  static_assert(LogitsPolicy<P>, "deepshock::policy::Pipeline: every type argument must be a LogitsPolicy (see "
                                 "deepshock/policy/concept.hpp): a struct with `static constexpr const char* kName`, a "
                                 "trivially copyable nested `Params`, `static Status validate(const Params&, int rows, int vocab)` "
                                 "and `DEEPSHOCK_HOST_DEVICE static float apply(const Params&, int row, int col, float x)`.");
  static constexpr bool value = true;
};

/// Recursive holder of the Params of policies Ps... (head = first policy).
template <class... Ps>
struct ParamsList {};

template <class P, class... Rest>
struct ParamsList<P, Rest...> {
  typename P::Params head{};
  ParamsList<Rest...> tail{};

  ParamsList() = default;
  /// One Params per policy, in pipeline order.
  DEEPSHOCK_HOST_DEVICE constexpr ParamsList(const typename P::Params& h, const typename Rest::Params&... r) : head(h), tail(r...) {}

  /// Params of policy I (0-based, pipeline order).
  template <int I>
  DEEPSHOCK_HOST_DEVICE constexpr auto& get() noexcept {
    static_assert(I >= 0 && I <= static_cast<int>(sizeof...(Rest)), "Pipeline::Params::get<I>: I is out of range.");
    if constexpr (I == 0) return head;
    else return tail.template get<I - 1>();
  }
  /// Params of policy I (0-based, pipeline order).
  template <int I>
  DEEPSHOCK_HOST_DEVICE constexpr const auto& get() const noexcept {
    static_assert(I >= 0 && I <= static_cast<int>(sizeof...(Rest)), "Pipeline::Params::get<I>: I is out of range.");
    if constexpr (I == 0) return head;
    else return tail.template get<I - 1>();
  }

  /// P's apply, then the rest in order.
  DEEPSHOCK_HOST_DEVICE float apply(int row, int col, float x) const {
    x = P::apply(head, row, col, x);
    if constexpr (sizeof...(Rest) > 0) return tail.apply(row, col, x);
    else return x;
  }

  /// Every policy's validate; the first error is prefixed with "<kName> (stage <index>): ".
  Status validate(int rows, int vocab, int index = 0) const {
    const Status st = P::validate(head, rows, vocab);
    if (!st.ok()) return Status(st.code(), std::string(P::kName) + " (stage " + std::to_string(index) + "): " + st.message());
    if constexpr (sizeof...(Rest) > 0) return tail.validate(rows, vocab, index + 1);
    else return Status::success();
  }
};

}  // namespace detail

/// Policies P1, P2, ... applied in that order to every element, in one pass.
template <class... Ps>
struct Pipeline {
  static_assert(sizeof...(Ps) >= 1, "deepshock::policy::Pipeline needs at least one policy type.");
  static_assert((detail::require_logits_policy<Ps>::value && ...));

  static constexpr const char* kName = "Pipeline";
  /// Number of policies.
  static constexpr int kSize = static_cast<int>(sizeof...(Ps));
  /// Each policy's Params, in order; `get<I>()` reaches policy I's.
  using Params = detail::ParamsList<Ps...>;

  /// Host: every policy's validate, in order; an error names the policy and its stage, e.g.
  /// "AllowMask (stage 0): allow_mask: expected 32 words per row, got 31".
  static Status validate(const Params& p, int rows, int vocab) { return p.validate(rows, vocab); }

  /// Host and device: Pn(...P1(x)) for element (row, col).
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) { return p.apply(row, col, x); }
};

/// Launch shape of the fused pass (numbers only; results never depend on them).
struct PipelineTuning {
  int threads = 256;        ///< threads per block (multiple of 32, 32..1024)
  int max_col_blocks = 64;  ///< most blocks along a row (grid.x)
  int max_blocks = 8192;    ///< most blocks in all (grid.y is reduced to fit; rows are grid-strided)
};

namespace detail {

/// Checks of run_pipeline's arguments other than the policy parameters.
inline Status pipeline_check_args(const float* in, const float* out, int rows, int vocab, const PipelineTuning& t) {
  if (rows < 0) return Status::invalid_argument("rows", "must not be negative, got " + std::to_string(rows));
  if (vocab <= 0) return Status::invalid_argument("vocab", "must be positive, got " + std::to_string(vocab));
  if (t.threads < 32 || t.threads > 1024 || t.threads % 32 != 0)
    return Status::invalid_argument("tuning.threads", "must be a multiple of 32 between 32 and 1024");
  if (t.max_col_blocks < 1 || t.max_blocks < 1) return Status::invalid_argument("tuning.max_blocks", "block limits must be positive");
  if (rows == 0) return Status::success();
  if (in == nullptr) return Status::invalid_argument("in", "must not be null");
  if (out == nullptr) return Status::invalid_argument("out", "must not be null");
  const auto a = reinterpret_cast<std::uintptr_t>(in), b = reinterpret_cast<std::uintptr_t>(out);
  if (a % alignof(float) != 0) return Status::invalid_argument("in", "must be 4-byte aligned (float)");
  if (b % alignof(float) != 0) return Status::invalid_argument("out", "must be 4-byte aligned (float)");
  const std::uintptr_t bytes = static_cast<std::uintptr_t>(rows) * static_cast<std::uintptr_t>(vocab) * sizeof(float);
  if (a != b && a < b + bytes && b < a + bytes) return Status::invalid_argument("out", "must either equal in (in place) or not overlap it");
  return Status::success();
}

/// True when the float4 path applies: both pointers 16-byte aligned and vocab % 4 == 0.
inline bool pipeline_vectorised(const float* in, const float* out, int vocab) {
  return vocab % 4 == 0 && reinterpret_cast<std::uintptr_t>(in) % 16 == 0 && reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
}

}  // namespace detail

#if DEEPSHOCK_HAS_KERNELS
namespace detail {

/// The fused pass: out[r, c] = P::apply(params, r, c, in[r, c]). With Vec4 each thread moves
/// one float4 (columns 4j..4j+3 of one row; vocab % 4 == 0 and 16-byte alignment checked by
/// the host). `in` may equal `out`: every element is read and written by the same thread.
template <class P, bool Vec4>
DEEPSHOCK_KERNEL void __launch_bounds__(1024) pipeline_kernel(typename P::Params params, const float* in, float* out, int rows, int vocab) {
  const int n = Vec4 ? vocab / 4 : vocab;  // items per row
  const int stride = static_cast<int>(gridDim.x * blockDim.x);
  for (int r = static_cast<int>(blockIdx.y); r < rows; r += static_cast<int>(gridDim.y)) {
    const std::size_t base = static_cast<std::size_t>(r) * static_cast<std::size_t>(vocab);
    for (int j = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); j < n; j += stride) {
      if constexpr (Vec4) {
        float4 v = reinterpret_cast<const float4*>(in + base)[j];
        const int c = 4 * j;
        v.x = P::apply(params, r, c, v.x);
        v.y = P::apply(params, r, c + 1, v.y);
        v.z = P::apply(params, r, c + 2, v.z);
        v.w = P::apply(params, r, c + 3, v.w);
        reinterpret_cast<float4*>(out + base)[j] = v;
      } else {
        out[base + static_cast<std::size_t>(j)] = P::apply(params, r, j, in[base + static_cast<std::size_t>(j)]);
      }
    }
  }
}

}  // namespace detail

/// Applies policy (or Pipeline) P to `rows` x `vocab` fp32 logits: out = P(in), row-major,
/// device memory; `out` may equal `in`. Checks the arguments and P::validate first and returns
/// a Status naming the first bad one; rows = 0 is a valid no-op. Asynchronous on `stream`; no
/// allocation, no host synchronisation.
template <class P>
requires LogitsPolicy<P> Status run_pipeline(const typename P::Params& params, const float* in, float* out, int rows, int vocab,
                                             rt::stream_t stream, const PipelineTuning& tuning = {}) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::pipeline_check_args(in, out, rows, vocab, tuning));
  if (rows == 0) return Status::success();
  DEEPSHOCK_RETURN_IF_ERROR(P::validate(params, rows, vocab));
  const bool vec = detail::pipeline_vectorised(in, out, vocab);
  const int items = vec ? vocab / 4 : vocab;
  int gx = (items + tuning.threads - 1) / tuning.threads;
  gx = gx < tuning.max_col_blocks ? gx : tuning.max_col_blocks;
  int gy = tuning.max_blocks / gx;
  gy = gy < 1 ? 1 : gy;
  gy = gy < rows ? gy : rows;
  gy = gy < 65535 ? gy : 65535;
  const LaunchConfig cfg{dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), dim3(static_cast<unsigned>(tuning.threads)), 0,
                         stream};
  if (vec) return launch(detail::pipeline_kernel<P, true>, cfg, params, in, out, rows, vocab);
  return launch(detail::pipeline_kernel<P, false>, cfg, params, in, out, rows, vocab);
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::policy
