// The demo's --quant: the expert tensors (routed and shared) of a demo::Model quantized with the
// library's host quantizers, and the layer weights that point at them.
//   int8  quant::Int8Channel: int8, one fp32 scale per output channel (amax / 127)   W8A16
//   w8a8  quant::Int8ChannelA8: the same weights, activations int8 per token (dynamic) W8A8
//   int4  quant::Int4Group<128>: 4-bit codes, one fp16 scale per 128 inputs of an output
//         channel, zero fixed at 8 ("uint4b8", the GPTQ symmetric layout)           W4A16
//   mxfp4 quant::Mxfp4: E2M1 codes, one power-of-two (E8M0) scale per 32 inputs, the OCP rule
//         (the gpt-oss expert format)                                              W4A16
//   nvfp4 quant::Nvfp4: E2M1 codes, one E4M3 scale per 16 inputs, one fp32 factor per expert
//         matrix (compressed-tensors' rule)                                        W4A16
//   fp8   quant::Fp8Block: E4M3 codes, one fp32 scale per 128 x 128 block (the DeepSeek-V3
//         recipe: amax / 448)                                                      W8A16
//   fp8a8 quant::Fp8BlockA8: the same weights, activations E4M3 per token and 128 inputs
//         (dynamic), FP8 tensor-core GEMMs (sm_89+)                                 W8A8
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/quant/fp4.hpp"
#include "deepshock/quant/fp8.hpp"
#include "deepshock/quant/int4.hpp"
#include "deepshock/quant/int8.hpp"
#include "model.hpp"

namespace demo {

namespace ds = deepshock;
namespace quant = deepshock::quant;

using Int4 = quant::Int4Group<128>;

/// One expert tensor in a codec's layout (empty vectors where the codec has no such data).
struct QuantTensor {
  std::vector<std::uint8_t> q;        ///< int8 values or packed 4-bit codes
  std::vector<float> scale;           ///< Int8Channel: [rows]; Fp8Block: [experts][rows / 128][cols / 128]
  std::vector<std::uint16_t> gscale;  ///< Int4Group: [experts][cols / G][rows per expert]
  std::vector<std::uint8_t> zero;     ///< Int4Group asymmetric: as gscale
  std::vector<std::uint8_t> bscale;   ///< Mxfp4 / Nvfp4: 8-bit block scales, laid out as gscale
  std::vector<float> global;          ///< Nvfp4: [experts]
  std::size_t bytes() const { return q.size() + 4 * scale.size() + 2 * gscale.size() + zero.size() + bscale.size() + 4 * global.size(); }
};
using QuantModel = std::array<QuantTensor, kTensors>;

/// Quantizes the expert tensors of `m` with Codec's host quantizer, rows (int8) or experts (int4)
/// in parallel; the first error, if any, is returned.
template <class Codec>
ds::Status quantize_model(const Preset& p, const Model& m, QuantModel& qm) {
  for (Tensor t : kExpertTensors) {
    if (m[t].n == 0) continue;
    long long rows = 0, cols = 0;
    expert_shape(p, t, rows, cols);
    const long long experts = expert_count(p, t), per = rows / experts;  // rows per expert
    QuantTensor& qt = qm[t];
    std::mutex mu;
    ds::Status first_error = ds::Status::success();
    auto keep = [&](const ds::Status& s) {
      if (s.ok()) return;
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.ok()) (void)(first_error = s);
    };
    // Experts in parallel (groups and blocks never cross them): quantize(x, f) gets expert x's
    // weights as floats.
    auto each_expert = [&](auto&& quantize) {
      parallel_for(static_cast<std::size_t>(experts) * 65536, [&](std::size_t b, std::size_t e) {
        std::vector<float> f(static_cast<std::size_t>(per * cols));
        for (std::size_t x = (b + 65535) / 65536; x < (e + 65535) / 65536; ++x) {
          const bf16* src = m[t].p.get() + x * static_cast<std::size_t>(per * cols);
          for (std::size_t i = 0; i < f.size(); ++i) f[i] = src[i].to_float();
          keep(quantize(x, f.data()));
        }
      });
    };
    if constexpr (std::is_base_of_v<quant::Fp8Block, Codec>) {  // Fp8Block, Fp8BlockA8
      const auto qe = static_cast<std::size_t>(per * cols), se = static_cast<std::size_t>(Codec::blocks(per) * Codec::blocks(cols));
      qt.q.resize(m[t].n);
      qt.scale.resize(static_cast<std::size_t>(experts) * se);
      each_expert([&](std::size_t x, const float* f) {
        return quant::quantize_fp8_block(f, per, cols, cols, qt.q.data() + x * qe, cols, qt.scale.data() + x * se);
      });
    } else if constexpr (std::is_base_of_v<quant::Int8Channel, Codec>) {  // Int8Channel, Int8ChannelA8
      qt.q.resize(m[t].n);
      qt.scale.resize(static_cast<std::size_t>(rows));
      parallel_for(static_cast<std::size_t>(rows), [&](std::size_t b, std::size_t e) {  // rows are independent
        std::vector<float> f(static_cast<std::size_t>(cols));
        for (std::size_t r = b; r < e; ++r) {
          for (long long c = 0; c < cols; ++c) f[static_cast<std::size_t>(c)] = m[t].p[r * cols + c].to_float();
          keep(quant::quantize_int8_channel(f.data(), 1, cols, cols, reinterpret_cast<std::int8_t*>(qt.q.data()) + r * cols, cols,
                                            qt.scale.data() + r));
        }
      });
    } else {
      constexpr int G = Codec::kGroup;
      constexpr bool kFp4 = std::is_same_v<Codec, quant::Mxfp4> || std::is_same_v<Codec, quant::Nvfp4>;
      const std::size_t qe = static_cast<std::size_t>(per * cols / 2), se = static_cast<std::size_t>(per * (cols / G));
      qt.q.resize(static_cast<std::size_t>(experts) * qe);
      (kFp4 ? qt.bscale.resize(static_cast<std::size_t>(experts) * se) : qt.gscale.resize(static_cast<std::size_t>(experts) * se));
      if (Codec::kZeros) qt.zero.resize(qt.gscale.size());
      if (std::is_same_v<Codec, quant::Nvfp4>) qt.global.resize(static_cast<std::size_t>(experts));
      each_expert([&](std::size_t x, const float* f) {
        std::uint8_t* q = qt.q.data() + x * qe;
        if constexpr (std::is_same_v<Codec, quant::Mxfp4>)
          return quant::quantize_mxfp4(f, per, cols, cols, q, cols / 2, qt.bscale.data() + x * se);
        else if constexpr (std::is_same_v<Codec, quant::Nvfp4>)
          return quant::quantize_nvfp4(f, per, cols, cols, q, cols / 2, qt.bscale.data() + x * se, qt.global.data() + x);
        else
          return quant::quantize_int4_group<Codec>(f, per, cols, cols, q, cols / 2, qt.gscale.data() + x * se,
                                                   Codec::kZeros ? qt.zero.data() + x * se : nullptr);
      });
    }
    DEEPSHOCK_RETURN_IF_ERROR(first_error);
  }
  return ds::Status::success();
}

/// The demo's quantization rule for Codec, in words.
template <class Codec>
const char* quant_rule() {
  if constexpr (std::is_base_of_v<quant::Int8Channel, Codec>)
    return "int8, one fp32 scale per output channel: amax / 127, round half to even";
  else if constexpr (std::is_same_v<Codec, quant::Mxfp4>)
    return "E2M1 codes, one E8M0 scale per 32 inputs: 2^(floor(log2 amax) - 2) (OCP), round half to even, saturating";
  else if constexpr (std::is_same_v<Codec, quant::Nvfp4>)
    return "E2M1 codes, one E4M3 scale per 16 inputs and an fp32 factor per expert matrix (compressed-tensors' rule)";
  else if constexpr (std::is_base_of_v<quant::Fp8Block, Codec>)
    return "E4M3 codes, one fp32 scale per 128 x 128 block: amax / 448, round half to even, saturating (DeepSeek-V3)";
  else return "4-bit codes - 8, one fp16 scale per 128 inputs: amax / 7, round half to even";
}

/// Stored bytes per weight of the quantized routed experts (codes and scales).
inline double bytes_per_weight(const Model& m, const QuantModel& qm) {
  double bytes = 0.0, weights = 0.0;
  for (Tensor t : {kW1, kW3, kW2}) bytes += static_cast<double>(qm[t].bytes()), weights += static_cast<double>(m[t].n);
  return weights > 0.0 ? bytes / weights : 0.0;
}

/// Pointers to one copy (host or device) of the tensors and of their codec data.
struct ModelPtrs {
  std::array<const bf16*, kTensors> bf{};
  std::array<const std::uint8_t*, kTensors> q{};
  std::array<const float*, kTensors> scale{};
  std::array<const std::uint16_t*, kTensors> gscale{};
  std::array<const std::uint8_t*, kTensors> zero{};
  std::array<const std::uint8_t*, kTensors> bscale{};
  std::array<const float*, kTensors> global{};
};

template <class V>
const typename V::value_type* data_or_null(const V& v) {
  return v.empty() ? nullptr : v.data();
}

inline ModelPtrs host_pointers(const Model& m, const QuantModel& qm) {
  ModelPtrs p;
  p.bf = pointers(m);
  for (int i = 0; i < kTensors; ++i) {
    p.q[i] = data_or_null(qm[i].q);
    p.scale[i] = data_or_null(qm[i].scale);
    p.gscale[i] = data_or_null(qm[i].gscale);
    p.zero[i] = data_or_null(qm[i].zero);
    p.bscale[i] = data_or_null(qm[i].bscale);
    p.global[i] = data_or_null(qm[i].global);
  }
  return p;
}

/// Pointers to one copy (host or device) of the Biases (null where absent).
struct BiasPtrs {
  const float *b1 = nullptr, *b3 = nullptr, *b2 = nullptr, *router = nullptr, *correction = nullptr;
  int experts = 0;
};

/// The layer's weights for expert type ExpertT (null where absent).
template <class ExpertT>
moe::LayerWeights<bf16, ExpertT> layer_weights(const ModelPtrs& p, moe::SharedGate g, const BiasPtrs& b = {}) {
  using Codec = typename ExpertT::codec;
  using W = typename moe::LayerWeights<bf16, ExpertT>::W;
  moe::LayerWeights<bf16, ExpertT> w;
  w.b1 = b.b1, w.b3 = b.b3, w.b2 = b.b2, w.w_gate_bias = b.router;
  w.gate_bias = b.correction;
  w.gate_bias_size = b.correction != nullptr ? b.experts : 0;
  w.w_gate = p.bf[kWGate];
  w.shared_gate = p.bf[kSGate];
  w.shared_gate_kind = g;
  if constexpr (Codec::kIdentity) {
    w.w1 = p.bf[kW1], w.w3 = p.bf[kW3], w.w2 = p.bf[kW2];
    w.shared_w1 = p.bf[kS1], w.shared_w3 = p.bf[kS3], w.shared_w2 = p.bf[kS2];
  } else {
    auto q = [&](Tensor t) { return reinterpret_cast<const W*>(p.q[t]); };
    w.w1 = q(kW1), w.w3 = q(kW3), w.w2 = q(kW2);
    w.shared_w1 = q(kS1), w.shared_w3 = q(kS3), w.shared_w2 = q(kS2);
    if constexpr (std::is_base_of_v<quant::Int8Channel, Codec>) {
      w.codec = {p.scale[kW1], p.scale[kW3], p.scale[kW2], p.scale[kS1], p.scale[kS3], p.scale[kS2]};
    } else {
      auto d = [&](Tensor t) {
        if constexpr (std::is_base_of_v<quant::Fp8Block, Codec>) return typename Codec::MatrixData{p.scale[t]};
        else if constexpr (std::is_same_v<quant::scale_bits_t<Codec>, std::uint8_t>)
          return typename Codec::MatrixData{p.bscale[t], p.global[t]};
        else return typename Codec::MatrixData{p.gscale[t], p.zero[t]};
      };
      w.codec = {d(kW1), d(kW3), d(kW2), d(kS1), d(kS3), d(kS2)};
    }
  }
  return w;
}

}  // namespace demo
