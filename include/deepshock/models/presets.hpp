// deepshock/models/presets.hpp — published MoE models' layers: the routing policy, the expert
// type the checkpoint ships (codec, activation), the sizes and the run-time defaults the model
// was trained with, all from each model's own config.json.
//
//   using M = ds::models::DeepSeekV3;
//   ds::moe::Layer<M::Gate, M::Expert> layer(M::dims(max_tokens), ds::models::params<M>(), ds::models::options<M>());
//
// Why presets: a routing policy type does not know its model's run-time defaults. DeepSeek-V3
// multiplies its routed weights by 2.5 (routed_scaling_factor) and DeepSeek-V2 by 16, while
// gate::RouterOptions defaults to 1 for every policy; V2-Lite keeps its softmax weights
// unnormalised while Mixtral renormalises them. A caller who builds a layer from the policy type
// alone and forgets one of these gets plausible but wrong weights, with no error. The presets
// carry them (and gate::kDynamicConfigs carries the same values for run-time configurations; a
// test keeps the two in agreement).
//
// Members of a preset M:
//   kName, Gate, Expert            the model's name, gate policy, expert type as checkpointed
//   kHidden, kInter, kShared       H, I per routed expert, Is of the shared expert(s) (0: none)
//   kRenormalize, kScale           the routing defaults (params<M>(), options<M>())
//   kSigmoidSharedGate (optional)  Qwen-MoE: shared output x sigmoid(x . w_sg)
//   kExpertBiases, kRouterBias (optional)  gpt-oss: biases on the expert projections and on the
//                                  gate projection (LayerWeights::b1/b3/b2, w_gate_bias)
#pragma once

#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/types.hpp"
#include "deepshock/moe/activation.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/quant/fp4.hpp"
#include "deepshock/quant/fp8.hpp"

namespace deepshock::models {

struct Mixtral8x7B {
  static constexpr const char* kName = "Mixtral-8x7B";
  using Gate = gate::SoftmaxTopK<Experts<8>, TopK<2>>;
  using Expert = moe::Expert<>;
  static constexpr int kHidden = 4096, kInter = 14336, kShared = 0;
  static constexpr bool kRenormalize = true;
  static constexpr float kScale = 1.0f;
};
struct DeepSeekV2Lite {
  static constexpr const char* kName = "DeepSeek-V2-Lite";
  using Gate = gate::SoftmaxTopK<Experts<64>, TopK<6>>;
  using Expert = moe::Expert<>;
  static constexpr int kHidden = 2048, kInter = 1408, kShared = 2816;  // 2 shared experts of 1408
  static constexpr bool kRenormalize = false;
  static constexpr float kScale = 1.0f;
};
struct DeepSeekV2 {
  static constexpr const char* kName = "DeepSeek-V2";
  using Gate = gate::DeepSeekV2<Experts<160>, TopK<6>, Groups<8, 3>>;
  using Expert = moe::Expert<>;
  static constexpr int kHidden = 5120, kInter = 1536, kShared = 3072;  // 2 shared experts of 1536
  static constexpr bool kRenormalize = false;
  static constexpr float kScale = 16.0f;
};
/// DeepSeek-V3 / R1: sigmoid scores with the correction bias (LayerWeights::gate_bias), 8 groups
/// keep 4, top-8 renormalised (+ 1e-20), x 2.5; experts in FP8 E4M3 with 128 x 128 block scales.
struct DeepSeekV3 {
  static constexpr const char* kName = "DeepSeek-V3";
  using Gate = gate::DeepSeekV3<Experts<256>, TopK<8>, Groups<8, 4>>;
  using Expert = moe::Expert<quant::Fp8Block>;
  static constexpr int kHidden = 7168, kInter = 2048, kShared = 2048;  // 1 shared expert
  static constexpr bool kRenormalize = true;                           // with the policy's renorm_eps 1e-20
  static constexpr float kScale = 2.5f;
};
struct Qwen3_30B_A3B {
  static constexpr const char* kName = "Qwen3-30B-A3B";
  using Gate = gate::SoftmaxTopK<Experts<128>, TopK<8>>;
  using Expert = moe::Expert<>;
  static constexpr int kHidden = 2048, kInter = 768, kShared = 0;
  static constexpr bool kRenormalize = true;
  static constexpr float kScale = 1.0f;
};
struct Qwen15MoE {
  static constexpr const char* kName = "Qwen1.5-MoE-A2.7B";
  using Gate = gate::SoftmaxTopK<Experts<60>, TopK<4>>;
  using Expert = moe::Expert<>;
  static constexpr int kHidden = 2048, kInter = 1408, kShared = 5632;  // sigmoid-gated shared expert
  static constexpr bool kRenormalize = false;
  static constexpr float kScale = 1.0f;
  static constexpr bool kSigmoidSharedGate = true;  // shared output x sigmoid(x . w_sg), w_sg [H]
};
/// gpt-oss: top-4 on the biased router logits, softmax over the four (TopKSoftmax, temperature
/// 1); MXFP4 experts with biases and the clamped SwiGLU (alpha 1.702, limit 7); no shared expert.
/// Its checkpoint interleaves gate and up rows: models/gpt_oss.hpp imports it.
struct GptOss20b {
  static constexpr const char* kName = "gpt-oss-20b";
  using Gate = gate::TopKSoftmax<Experts<32>, TopK<4>>;
  using Expert = moe::Expert<quant::Mxfp4, lora::None, act::ClampedSwiGLU>;
  static constexpr int kHidden = 2880, kInter = 2880, kShared = 0;
  static constexpr bool kRenormalize = true;  // not read by TopKSoftmax: its softmax sums to 1
  static constexpr float kScale = 1.0f;
  static constexpr bool kExpertBiases = true, kRouterBias = true;
};
struct GptOss120b : GptOss20b {
  static constexpr const char* kName = "gpt-oss-120b";
  using Gate = gate::TopKSoftmax<Experts<128>, TopK<4>>;
};

/// Whether the model's shared expert is gated by sigmoid(x . w_sg) (Qwen-MoE) rather than added
/// with weight 1 (DeepSeek).
template <class M>
constexpr bool sigmoid_shared_gate() {
  if constexpr (requires { M::kSigmoidSharedGate; }) return M::kSigmoidSharedGate;
  else return false;
}
/// Whether the model's expert projections (and its gate projection) carry biases (gpt-oss).
template <class M>
constexpr bool expert_biases() {
  if constexpr (requires { M::kExpertBiases; }) return M::kExpertBiases;
  else return false;
}

/// The model's layer sizes, for runs of up to `max_tokens` tokens.
template <class M>
constexpr moe::LayerDims dims(int max_tokens) {
  return moe::LayerDims{M::kHidden, M::kInter, M::kShared, max_tokens};
}
/// The model's routing parameters: the policy's defaults with the model's renormalisation.
template <class M>
gate::PolicyParams params() {
  gate::PolicyParams p = gate::default_params<typename M::Gate>();
  p.renormalize = M::kRenormalize;
  return p;
}
/// The model's router options (the routed scaling factor).
template <class M>
gate::RouterOptions options() {
  gate::RouterOptions o;
  o.routed_scaling_factor = M::kScale;
  return o;
}

}  // namespace deepshock::models
