// Model shapes from the published configurations (config.json of each model), shared by the benchmarks: the routing policy type,
// the sizes, and the routing defaults (renormalisation, routed scaling factor). Only the types a
// benchmark names get instantiated.
#pragma once

#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/types.hpp"

namespace deepshock::bench::models {

struct Mixtral8x7B {
  static constexpr const char* kName = "Mixtral-8x7B";
  using Gate = gate::SoftmaxTopK<Experts<8>, TopK<2>>;
  static constexpr int kHidden = 4096, kInter = 14336, kShared = 0;
  static constexpr bool kRenormalize = true;
  static constexpr float kScale = 1.0f;
};
struct DeepSeekV2Lite {
  static constexpr const char* kName = "DeepSeek-V2-Lite";
  using Gate = gate::SoftmaxTopK<Experts<64>, TopK<6>>;
  static constexpr int kHidden = 2048, kInter = 1408, kShared = 2816;  // 2 shared experts of 1408
  static constexpr bool kRenormalize = false;
  static constexpr float kScale = 1.0f;
};
struct DeepSeekV2 {
  static constexpr const char* kName = "DeepSeek-V2";
  using Gate = gate::DeepSeekV2<Experts<160>, TopK<6>, Groups<8, 3>>;
  static constexpr int kHidden = 5120, kInter = 1536, kShared = 3072;  // 2 shared experts of 1536
  static constexpr bool kRenormalize = false;
  static constexpr float kScale = 16.0f;
};
struct DeepSeekV3 {
  static constexpr const char* kName = "DeepSeek-V3";
  using Gate = gate::DeepSeekV3<Experts<256>, TopK<8>, Groups<8, 4>>;  // sigmoid + bias
  static constexpr int kHidden = 7168, kInter = 2048, kShared = 2048;  // 1 shared expert
  static constexpr bool kRenormalize = true;                           // with the policy's renorm_eps 1e-20
  static constexpr float kScale = 2.5f;
};
struct Qwen3_30B_A3B {
  static constexpr const char* kName = "Qwen3-30B-A3B";
  using Gate = gate::SoftmaxTopK<Experts<128>, TopK<8>>;
  static constexpr int kHidden = 2048, kInter = 768, kShared = 0;
  static constexpr bool kRenormalize = true;
  static constexpr float kScale = 1.0f;
};
struct Qwen15MoE {
  static constexpr const char* kName = "Qwen1.5-MoE-A2.7B";
  using Gate = gate::SoftmaxTopK<Experts<60>, TopK<4>>;
  static constexpr int kHidden = 2048, kInter = 1408, kShared = 5632;  // sigmoid-gated shared expert
  static constexpr bool kRenormalize = false;
  static constexpr float kScale = 1.0f;
  static constexpr bool kSigmoidSharedGate = true;  // shared output x sigmoid(x . w_sg), w_sg [H]
};

/// Whether the model's shared expert is gated by sigmoid(x . w_sg) (Qwen-MoE) rather than added
/// with weight 1 (DeepSeek).
template <class M>
constexpr bool sigmoid_shared_gate() {
  if constexpr (requires { M::kSigmoidSharedGate; }) return M::kSigmoidSharedGate;
  else return false;
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

}  // namespace deepshock::bench::models
