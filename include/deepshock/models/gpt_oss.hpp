// deepshock/models/gpt_oss.hpp — one gpt-oss MoE layer's checkpoint tensors in the library's
// layout (host memory), for the layer of models::GptOss20b / GptOss120b (models/presets.hpp).
//
// What the checkpoint stores per layer (safetensors, under model.layers.N.mlp.):
//   router.weight                bf16  [E, H]          the gate projection (used as is: LayerWeights::w_gate)
//   router.bias                  bf16  [E]             its bias
//   experts.gate_up_proj_blocks  uint8 [E, 2I, H/32, 16]  MXFP4 codes, value 2j in the low nibble
//   experts.gate_up_proj_scales  uint8 [E, 2I, H/32]      E8M0 block scales
//   experts.gate_up_proj_bias    bf16  [E, 2I]
//   experts.down_proj_blocks     uint8 [E, H, I/32, 16]
//   experts.down_proj_scales     uint8 [E, H, I/32]
//   experts.down_proj_bias       bf16  [E, H]
// Gate and up are interleaved along the 2I rows — gate row i is row 2i, up row i is row 2i + 1 —
// in the blocks, the scales and the bias alike (transformers' GptOssExperts splits them with
// [..., ::2] and [..., 1::2]). quant::Mxfp4 stages the scales of contiguous output channels, so
// the layer cannot read interleaved rows in place (gate_up::Interleaved is for per-channel
// codecs); the importer de-interleaves them into w1 and w3 once. Codes and scales are copied
// bit for bit (no value passes through bf16); the bf16 biases become the fp32 biases the layer
// adds (exactly). The model then computes, per token and chosen expert,
//   h = (clamp(up, -7, 7) + 1) * g * sigmoid(1.702 g),  g = min(gate, 7),  out = W2 h + b2
// with gate = W1 x + b1 and up = W3 x + b3 (act::ClampedSwiGLU, LayerWeights' biases).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/models/presets.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/quant/fp4.hpp"
#include "deepshock/quant/fp4_import.hpp"

namespace deepshock::models {

/// One layer's gpt-oss tensors as the checkpoint stores them (host pointers; shapes above).
struct GptOssTensors {
  const std::uint8_t* gate_up_blocks = nullptr;
  const std::uint8_t* gate_up_scales = nullptr;
  const bf16* gate_up_bias = nullptr;  ///< optional (zero biases where null)
  const std::uint8_t* down_blocks = nullptr;
  const std::uint8_t* down_scales = nullptr;
  const bf16* down_bias = nullptr;    ///< optional
  const bf16* router_bias = nullptr;  ///< optional
  long long experts = 0, hidden = 0, intermediate = 0;
};

/// The same layer in the layout moe::Layer<.., GptOss20b::Expert> reads (host vectors; upload
/// each to the device and point LayerWeights at it, or use host_weights for the host executor).
struct GptOssExperts {
  long long experts = 0, hidden = 0, intermediate = 0;
  std::vector<std::uint8_t> w1, w3, w2;  ///< MXFP4 codes [E][I][H/2], [E][I][H/2], [E][H][I/2]
  std::vector<std::uint8_t> s1, s3, s2;  ///< E8M0 scales [E][H/32][I], [E][H/32][I], [E][I/32][H]
  std::vector<float> b1, b3, b2;         ///< [E][I], [E][I], [E][H]; empty without the checkpoint's biases
  std::vector<float> router_bias;        ///< [E]; empty without it
};

/// De-interleaves and converts one layer (see the header comment). Rejects sizes that are not
/// whole 32-value blocks, missing tensors and NaN scales, naming the checkpoint tensor.
inline Status import_gpt_oss(const GptOssTensors& in, GptOssExperts& out) {
  const long long E = in.experts, H = in.hidden, I = in.intermediate;
  if (E < 1 || H < 1 || I < 1) return Status::invalid_argument("experts/hidden/intermediate", "must be >= 1");
  for (const auto& [name, v] : {std::pair<const char*, long long>{"hidden", H}, {"intermediate", I}})
    if (v % quant::Mxfp4::kGroup != 0)
      return Status::invalid_argument(name, "must be a multiple of MXFP4's block size 32, got " + std::to_string(v));
  for (const auto& [name, p] : {std::pair<const char*, const void*>{"gate_up_proj_blocks", in.gate_up_blocks},
                                {"gate_up_proj_scales", in.gate_up_scales},
                                {"down_proj_blocks", in.down_blocks},
                                {"down_proj_scales", in.down_scales}})
    if (p == nullptr) return Status::invalid_argument(name, "must not be null");
  out = GptOssExperts{};
  out.experts = E, out.hidden = H, out.intermediate = I;
  const auto sz = [](long long v) { return static_cast<std::size_t>(v); };
  out.w1.resize(sz(E * I * H / 2)), out.w3.resize(sz(E * I * H / 2)), out.w2.resize(sz(E * H * I / 2));
  out.s1.resize(sz(E * I * H / 32)), out.s3.resize(sz(E * I * H / 32)), out.s2.resize(sz(E * H * I / 32));
  // Scale errors name the tensor: import_fp4_rows reports "scales".
  auto named = [](const Status& s, const char* tensor) { return s.ok() ? s : Status::invalid_argument(tensor, s.message()); };
  using quant::import_fp4_rows;
  using quant::Mxfp4;
  DEEPSHOCK_RETURN_IF_ERROR(named(import_fp4_rows<Mxfp4>(in.gate_up_blocks, in.gate_up_scales, E, I, H, out.w1.data(), out.s1.data(),
                                                         quant::RowPick{2 * I, 0, 2}),
                                  "gate_up_proj_scales"));
  DEEPSHOCK_RETURN_IF_ERROR(named(import_fp4_rows<Mxfp4>(in.gate_up_blocks, in.gate_up_scales, E, I, H, out.w3.data(), out.s3.data(),
                                                         quant::RowPick{2 * I, 1, 2}),
                                  "gate_up_proj_scales"));
  DEEPSHOCK_RETURN_IF_ERROR(
      named(import_fp4_rows<Mxfp4>(in.down_blocks, in.down_scales, E, H, I, out.w2.data(), out.s2.data()), "down_proj_scales"));
  if (in.gate_up_bias != nullptr) {
    out.b1.resize(sz(E * I)), out.b3.resize(sz(E * I));
    for (long long e = 0; e < E; ++e)
      for (long long i = 0; i < I; ++i) {
        out.b1[sz(e * I + i)] = in.gate_up_bias[e * 2 * I + 2 * i].to_float();
        out.b3[sz(e * I + i)] = in.gate_up_bias[e * 2 * I + 2 * i + 1].to_float();
      }
  }
  if (in.down_bias != nullptr) {
    out.b2.resize(sz(E * H));
    for (long long i = 0; i < E * H; ++i) out.b2[sz(i)] = in.down_bias[i].to_float();
  }
  if (in.router_bias != nullptr) {
    out.router_bias.resize(sz(E));
    for (long long e = 0; e < E; ++e) out.router_bias[sz(e)] = in.router_bias[e].to_float();
  }
  return Status::success();
}

/// LayerWeights over an imported layer in host memory (the host executor and the references),
/// with the checkpoint's router.weight [E, H] as the gate projection.
template <class T, class ExpertT = GptOss20b::Expert>
moe::LayerWeights<T, ExpertT> host_weights(const GptOssExperts& m, const T* router_weight) {
  static_assert(std::is_same_v<typename ExpertT::codec, quant::Mxfp4>, "deepshock::models::host_weights: gpt-oss experts are MXFP4.");
  auto ptr = [](const auto& v) { return v.empty() ? nullptr : v.data(); };
  moe::LayerWeights<T, ExpertT> w;
  w.w_gate = router_weight;
  w.w_gate_bias = ptr(m.router_bias);
  w.w1 = m.w1.data(), w.w3 = m.w3.data(), w.w2 = m.w2.data();
  w.b1 = ptr(m.b1), w.b3 = ptr(m.b3), w.b2 = ptr(m.b2);
  w.codec.w1 = {m.s1.data(), nullptr};
  w.codec.w3 = {m.s3.data(), nullptr};
  w.codec.w2 = {m.s2.data(), nullptr};
  return w;
}

}  // namespace deepshock::models
