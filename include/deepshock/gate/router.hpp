// deepshock/gate/router.hpp — Router<Policy>: the host entry point of token-choice routing.
//
//   using Policy = ds::gate::DeepSeekV3<ds::Experts<256>, ds::TopK<8>, ds::Groups<8, 4>>;
//   ds::gate::Router<Policy> router(ds::gate::default_params<Policy>(), {.routed_scaling_factor = 2.5f});
//   std::size_t ws = router.workspace_bytes(max_tokens);          // size first ...
//   ds::Status st = router.run(inputs, outputs, workspace, ws, stream);   // ... then run
//
// `run` fuses the gate projection (x . W_g^T, bf16/fp16/fp32 in, fp32 accumulate; tensor cores
// for bf16/fp16 when H is a multiple of 8 and the pointers are 16-byte aligned) with the
// routing; `run_logits` routes precomputed fp32 logits. Both validate every argument (a Status
// names the bad one), never allocate and never synchronise the host, so a captured CUDA graph
// can replay them. T = 0 is a valid no-op (counts are still zeroed).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "deepshock/core/status.hpp"
#include "deepshock/gate/capacity.hpp"
#include "deepshock/gate/concept.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/router_kernel.hpp"
#include "deepshock/gate/types.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"

namespace deepshock::gate {

/// Inputs of the fused router (device pointers). E is the policy's compile-time expert count, so
/// W_g must be [E, H] with the same H as x; the only run-time length the router can check against
/// E is `bias_size`.
template <class In>
struct GateInputs {
  const In* x = nullptr;        ///< [T, H] hidden states
  const In* w_gate = nullptr;   ///< [E, H] gate weights (nn.Linear layout)
  const In* w_noise = nullptr;  ///< [E, H] noise weights: NoisyTopK only
  int tokens = 0;               ///< T
  int hidden = 0;               ///< H
  const float* bias = nullptr;  ///< [E] correction bias: DeepSeekV3 only (finite values; a NaN
                                ///< makes that expert's key NaN: ranked last, left out of its group's score)
  int bias_size = 0;            ///< number of values at `bias`
  /// [E] optional bias of the gate projection, any policy (gpt-oss's router): the logits are
  /// x . W_g^T + w_gate_bias in fp32, before scoring, so it chooses and weighs (unlike `bias`).
  const float* w_gate_bias = nullptr;
};

/// Inputs of routing on precomputed logits (device pointers).
struct LogitInputs {
  const float* logits = nullptr;        ///< [T, E]
  const float* noise_logits = nullptr;  ///< [T, E]: NoisyTopK only
  int tokens = 0;
  const float* bias = nullptr;
  int bias_size = 0;
};

#if DEEPSHOCK_HAS_KERNELS
/// Token-choice router for `Policy` (see gate/policies.hpp). Needs nvcc or the simulator.
template <class Policy>
class Router {
  static_assert(GatePolicy<Policy>, "deepshock::gate::Router: Policy is not a gating policy (gate::GatePolicy, gate/concept.hpp).");

 public:
  static constexpr int kExperts = Policy::kExperts;
  static constexpr int kTopK = Policy::kTopK;

  explicit Router(PolicyParams params = default_params<Policy>(), RouterOptions options = {}) : params_(params), options_(options) {}

  const PolicyParams& params() const noexcept { return params_; }
  const RouterOptions& options() const noexcept { return options_; }

  /// Scratch the router needs for up to `max_tokens` tokens: none for most policies; Switch
  /// keeps its capacity bookkeeping there (positions, per-expert kept counts, and the drop
  /// flags and count when the outputs do not hold them).
  /// The decode path (T <= detail::kSplitMaxTokens) of `run` also keeps the logits there.
  static std::size_t workspace_bytes(int max_tokens) {
    if (max_tokens <= 0) return 0;
    return capacity_bytes(max_tokens) + logits_bytes(max_tokens);
  }
  /// Scratch of `run_logits` alone (a part of workspace_bytes).
  static std::size_t logits_workspace_bytes(int max_tokens) { return capacity_bytes(max_tokens); }

  /// Gate projection + routing.
  template <class In>
  Status run(const GateInputs<In>& in, const RoutingOutputs& out, void* workspace, std::size_t workspace_size, rt::stream_t stream) const {
    static_assert(std::is_same_v<In, float> || std::is_same_v<In, bf16> || std::is_same_v<In, fp16>,
                  "deepshock::gate::Router::run takes fp32, bf16 or fp16 inputs.");
    DEEPSHOCK_RETURN_IF_ERROR(check_common(in.tokens, in.bias, in.bias_size, out));
    if (in.tokens > 0) {
      if (in.hidden < 1) return Status::invalid_argument("hidden", "must be at least 1, got " + std::to_string(in.hidden));
      if (in.x == nullptr) return Status::invalid_argument("x", "must not be null");
      if (in.w_gate == nullptr) return Status::invalid_argument("w_gate", "must not be null");
      if (Policy::kNoisy && in.w_noise == nullptr) return Status::invalid_argument("w_noise", "NoisyTopK needs the noise weights");
    }
    if (!Policy::kNoisy && in.w_noise != nullptr) return Status::invalid_argument("w_noise", "only NoisyTopK takes noise weights");
    DEEPSHOCK_RETURN_IF_ERROR(check_workspace(workspace_bytes(in.tokens), workspace, workspace_size));
    DEEPSHOCK_RETURN_IF_ERROR(zero_outputs(out, stream));
    if (in.tokens == 0) return Status::success();
    detail::RouterArgs args = make_args(in.tokens, in.hidden, in.bias, out);
    args.w_gate_bias = in.w_gate_bias;
    const Path kernels = choose_path(in, options_.batch_invariant);
    if (kernels == Path::decode) {
      // Decode: project with many blocks into the workspace, then route.
      constexpr int columns = detail::logit_columns<Policy>();
      float* logits = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + capacity_bytes(in.tokens));
      const dim3 grid((columns + detail::kProjWarps - 1) / detail::kProjWarps,
                      static_cast<unsigned>((in.tokens + detail::kProjTokens - 1) / detail::kProjTokens));
      auto* projection = detail::vector_loads_ok(in.x, in.w_gate, in.w_noise, in.hidden) ? detail::gate_projection_kernel<In, true>
                                                                                         : detail::gate_projection_kernel<In, false>;
      DEEPSHOCK_RETURN_IF_ERROR(launch(projection, {grid, dim3(32 * detail::kProjWarps), 0, stream}, in.x, in.w_gate, in.w_noise, in.tokens,
                                       in.hidden, kExperts, columns, logits));
      const unsigned blocks = static_cast<unsigned>((in.tokens + detail::kRouterWarps - 1) / detail::kRouterWarps);
      DEEPSHOCK_RETURN_IF_ERROR(launch(detail::logits_router_kernel<Policy>,
                                       {dim3(blocks), dim3(detail::kRouterThreads), 0, stream, options_.dependent_launch}, logits,
                                       Policy::kNoisy ? logits + kExperts : nullptr, static_cast<long long>(columns), args));
    } else if (kernels == Path::tensor_cores) {
      if constexpr (sizeof(In) == 2) {
        constexpr long long kTokens = detail::mma_router_tokens<Policy>();
        const unsigned blocks = static_cast<unsigned>((static_cast<long long>(in.tokens) + kTokens - 1) / kTokens);
        DEEPSHOCK_RETURN_IF_ERROR(launch(detail::mma_router_kernel<Policy, In>,
                                         {dim3(blocks), dim3(detail::kRouterThreads), detail::mma_fused_smem_bytes<Policy>(), stream}, in.x,
                                         in.w_gate, in.w_noise, args));
      }
    } else {
      const unsigned blocks =
          static_cast<unsigned>((static_cast<long long>(in.tokens) + detail::kRouterTokens - 1) / detail::kRouterTokens);
      DEEPSHOCK_RETURN_IF_ERROR(launch(detail::fused_router_kernel<Policy, In>,
                                       {dim3(blocks), dim3(detail::kRouterThreads), detail::fused_smem_bytes<Policy>(), stream}, in.x,
                                       in.w_gate, in.w_noise, args));
    }
    return apply_capacity(in.tokens, out, workspace, stream);
  }

  /// Whether `run` projects these inputs on tensor cores (T > detail::kSplitMaxTokens, the fused
  /// path): bf16 or fp16 values, H a multiple of 8, and x, w_gate (and w_noise) 16-byte aligned.
  /// Other inputs take the FMA kernels, which accept any H and alignment.
  /// With RouterOptions::batch_invariant, pass it as `batch_invariant` (every T takes the fused path).
  template <class In>
  static bool uses_tensor_cores(const GateInputs<In>& in, bool batch_invariant = false) {
    return choose_path(in, batch_invariant) == Path::tensor_cores;
  }

  /// The kernels `run` takes for these inputs, in words (logs, demos): the decode pair, the
  /// tensor-core fused kernel or the FMA fused kernel, and Switch's capacity pass.
  template <class In>
  static std::string path(const GateInputs<In>& in, bool batch_invariant = false) {
    if (in.tokens <= 0) return "nothing (T = 0)";
    std::string s;
    switch (choose_path(in, batch_invariant)) {
      case Path::decode: s = "decode: projection spread over the experts + routing kernel"; break;
      case Path::tensor_cores:
        s = "fused tensor-core kernel, " + std::to_string(detail::mma_router_tokens<Policy>()) + " tokens per block";
        break;
      case Path::fma: s = "fused FMA kernel, " + std::to_string(detail::kRouterTokens) + " tokens per block"; break;
    }
    if (Policy::kCapacity) s += " + capacity pass";
    return s;
  }

  /// Routing on precomputed logits.
  Status run_logits(const LogitInputs& in, const RoutingOutputs& out, void* workspace, std::size_t workspace_size,
                    rt::stream_t stream) const {
    DEEPSHOCK_RETURN_IF_ERROR(check_common(in.tokens, in.bias, in.bias_size, out));
    if (in.tokens > 0 && in.logits == nullptr) return Status::invalid_argument("logits", "must not be null");
    if (Policy::kNoisy && in.tokens > 0 && in.noise_logits == nullptr)
      return Status::invalid_argument("noise_logits", "NoisyTopK needs the noise logits");
    if (!Policy::kNoisy && in.noise_logits != nullptr) return Status::invalid_argument("noise_logits", "only NoisyTopK takes noise logits");
    DEEPSHOCK_RETURN_IF_ERROR(check_workspace(capacity_bytes(in.tokens), workspace, workspace_size));
    DEEPSHOCK_RETURN_IF_ERROR(zero_outputs(out, stream));
    if (in.tokens == 0) return Status::success();
    const detail::RouterArgs args = make_args(in.tokens, 0, in.bias, out);
    const unsigned blocks = static_cast<unsigned>((static_cast<long long>(in.tokens) + detail::kRouterWarps - 1) / detail::kRouterWarps);
    DEEPSHOCK_RETURN_IF_ERROR(launch(detail::logits_router_kernel<Policy>, {dim3(blocks), dim3(detail::kRouterThreads), 0, stream},
                                     in.logits, in.noise_logits, static_cast<long long>(kExperts), args));
    return apply_capacity(in.tokens, out, workspace, stream);
  }

 private:
  /// The projection kernels `run` takes (the one decision behind run, uses_tensor_cores, path).
  enum class Path { decode, tensor_cores, fma };
  template <class In>
  static Path choose_path(const GateInputs<In>& in, bool batch_invariant) {
    if (in.tokens <= detail::kSplitMaxTokens && !batch_invariant) return Path::decode;
    return detail::mma_projection_ok(in.x, in.w_gate, in.w_noise, in.hidden) ? Path::tensor_cores : Path::fma;
  }

  static constexpr std::size_t align(std::size_t bytes) { return (bytes + 255) / 256 * 256; }
  /// Switch's capacity bookkeeping (0 for other policies); lies first in the workspace.
  static std::size_t capacity_bytes(int tokens) {
    if (!Policy::kCapacity || tokens <= 0) return 0;
    const std::size_t T = static_cast<std::size_t>(tokens);
    return align(sizeof(int) * T) + align(sizeof(int) * kExperts) + align(T) + align(sizeof(int));
  }
  /// Logits of the decode path, after the capacity part.
  static std::size_t logits_bytes(int tokens) {
    const int t = tokens < detail::kSplitMaxTokens ? tokens : detail::kSplitMaxTokens;
    return t <= 0 ? 0 : align(sizeof(float) * static_cast<std::size_t>(t) * detail::logit_columns<Policy>());
  }

  Status check_workspace(std::size_t need, const void* workspace, std::size_t size) const {
    if (need == 0) return Status::success();
    if (workspace == nullptr) return Status::invalid_argument("workspace", "must not be null (query workspace_bytes)");
    if (size < need) return Status::resource_exhausted("workspace_size", std::to_string(size) + " bytes, need " + std::to_string(need));
    if (reinterpret_cast<std::uintptr_t>(workspace) % 256 != 0) return Status::invalid_argument("workspace", "must be 256-byte aligned");
    return Status::success();
  }

  /// Switch: drops the tokens beyond the expert capacity (ids -1, weights 0), in place.
  Status apply_capacity(int tokens, const RoutingOutputs& out, void* workspace, rt::stream_t stream) const {
    if constexpr (!Policy::kCapacity) {
      (void)tokens;
      (void)out;
      (void)workspace;
      (void)stream;
      return Status::success();
    } else {
      const int capacity = switch_capacity(tokens, kExperts, params_.capacity_factor);
      const std::size_t T = static_cast<std::size_t>(tokens);
      auto* base = static_cast<unsigned char*>(workspace);
      int* position = reinterpret_cast<int*>(base);
      int* kept = reinterpret_cast<int*>(base + align(sizeof(int) * T));
      auto* dropped = base + align(sizeof(int) * T) + align(sizeof(int) * kExperts);
      int* dropped_count = reinterpret_cast<int*>(dropped + align(T));
      CapacityOutputs co;
      co.position = position;
      co.dropped = out.dropped != nullptr ? out.dropped : dropped;
      co.dropped_count = out.dropped_count != nullptr ? out.dropped_count : dropped_count;
      co.kept_counts = out.expert_counts != nullptr ? out.expert_counts : kept;  // counts after the drops
      co.topk_weights = out.topk_weights;
      co.topk_ids = out.topk_ids;  // in place: the kernel reads the ids before the drops are applied
      return apply_switch_capacity(out.topk_ids, tokens, kExperts, capacity, co, stream);
    }
  }

  Status check_common(int tokens, const float* bias, int bias_size, const RoutingOutputs& out) const {
    if (tokens < 0) return Status::invalid_argument("tokens", "must be >= 0, got " + std::to_string(tokens));
    if (tokens > 0 && out.topk_ids == nullptr) return Status::invalid_argument("topk_ids", "must not be null");
    if (tokens > 0 && out.topk_weights == nullptr) return Status::invalid_argument("topk_weights", "must not be null");
    if (Policy::kUsesBias) {
      if (bias == nullptr) return Status::invalid_argument("bias", std::string(Policy::kName) + " needs the correction bias");
      if (bias_size != kExperts)
        return Status::invalid_argument("bias", "expected " + std::to_string(kExperts) + " values (one per expert), got " +
                                                    std::to_string(bias_size));
    } else if (bias != nullptr) {
      return Status::invalid_argument("bias", std::string(Policy::kName) + " takes no correction bias");
    }
    if (!Policy::kCapacity && (out.dropped != nullptr || out.dropped_count != nullptr))
      return Status::invalid_argument("dropped/dropped_count", std::string(Policy::kName) + " has no capacity: nothing is dropped");
    const int end = options_.expert_end == -1 ? kExperts : options_.expert_end;
    if (options_.expert_begin < 0 || options_.expert_begin >= end || end > kExperts)
      return Status::invalid_argument("options.expert_begin/expert_end", "need 0 <= begin < end <= " + std::to_string(kExperts) +
                                                                             ", got [" + std::to_string(options_.expert_begin) + ", " +
                                                                             std::to_string(options_.expert_end) + ")");
    if (!std::isfinite(options_.routed_scaling_factor)) return Status::invalid_argument("options.routed_scaling_factor", "must be finite");
    if (Policy::kWeightRule == WeightRule::softmax_selected && !(params_.temperature > 0.0f && std::isfinite(params_.temperature)))
      return Status::invalid_argument("params.temperature", "must be finite and > 0");
    if (!(params_.renorm_eps >= 0.0f && std::isfinite(params_.renorm_eps)))
      return Status::invalid_argument("params.renorm_eps", "must be finite and >= 0");
    if (Policy::kCapacity && !(params_.capacity_factor > 0.0f && std::isfinite(params_.capacity_factor)))
      return Status::invalid_argument("params.capacity_factor", "must be finite and > 0");
    return Status::success();
  }

  Status zero_outputs(const RoutingOutputs& out, rt::stream_t stream) const {
    if (out.expert_counts != nullptr) DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(out.expert_counts, 0, sizeof(int) * kExperts, stream));
    if (out.nonfinite_count != nullptr) DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(out.nonfinite_count, 0, sizeof(int), stream));
    return Status::success();
  }

  detail::RouterArgs make_args(int tokens, int hidden, const float* bias, const RoutingOutputs& out) const {
    detail::RouterArgs a;
    a.tokens = tokens;
    a.hidden = hidden;
    a.bias = bias;
    a.params = params_;
    a.options = options_;
    if (a.options.expert_end < 0) a.options.expert_end = kExperts;
    a.out = out;
    return a;
  }

  PolicyParams params_;
  RouterOptions options_;
};
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::gate
