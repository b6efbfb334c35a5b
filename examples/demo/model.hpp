// The demo's model: the presets (real models' shapes and gates) and a random bf16 model made from
// a seed with a counter-based hash, so that a seed gives the same model on every machine.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "deepshock/core/numeric.hpp"
#include "deepshock/moe/expert.hpp"

namespace demo {

namespace moe = deepshock::moe;
using deepshock::bf16;

enum class GateKind { v2lite, qwen3, qwen15, mixtral, gpt_oss, v3 };
struct Preset {
  const char* name;
  const char* about;
  GateKind gate;
  int experts, topk, hidden, inter, shared;  // shared: the shared experts' total intermediate size
  moe::SharedGate shared_gate;
  bool renormalize;
  const char* quant = nullptr;  // the checkpoint's expert format, the only --quant such a preset takes (null: any)
  float scale = 1.0f;           // routed_scaling_factor (models/presets.hpp)
  bool biases = false;          // gpt-oss: biases on the expert projections and the router
};
inline constexpr Preset kPresets[] = {
    {"deepseek-v2-lite", "DeepSeek-V2-Lite: 64 experts top-6 (softmax, no renormalisation) + 2 shared experts", GateKind::v2lite, 64, 6,
     2048, 1408, 2816, moe::SharedGate::none, false},
    {"qwen3-30b-a3b", "Qwen3-30B-A3B: 128 experts top-8 (softmax, renormalised), no shared expert", GateKind::qwen3, 128, 8, 2048, 768, 0,
     moe::SharedGate::none, true},
    {"qwen1.5-moe", "Qwen1.5-MoE-A2.7B: 60 experts top-4 (softmax, no renormalisation) + a sigmoid-gated shared expert", GateKind::qwen15,
     60, 4, 2048, 1408, 5632, moe::SharedGate::sigmoid, false},
    {"mixtral", "Mixtral-8x7B: 8 experts top-2 (softmax, renormalised)", GateKind::mixtral, 8, 2, 4096, 14336, 0, moe::SharedGate::none,
     true},
    {"small", "DeepSeek-V2-Lite routing (64 experts top-6, 2 shared experts) at hidden 256, intermediate 128 (quick)", GateKind::v2lite, 64,
     6, 256, 128, 256, moe::SharedGate::none, false},
    {"gpt-oss-20b", "gpt-oss-20b: 32 MXFP4 experts top-4 (top-k on biased logits, softmax over the 4), expert biases, clamped SwiGLU",
     GateKind::gpt_oss, 32, 4, 2880, 2880, 0, moe::SharedGate::none, true, "mxfp4", 1.0f, true},
    {"gpt-oss-small", "gpt-oss-20b's layer (routing, MXFP4, biases, clamped SwiGLU) at hidden 256, intermediate 256 (quick)",
     GateKind::gpt_oss, 32, 4, 256, 256, 0, moe::SharedGate::none, true, "mxfp4", 1.0f, true},
    {"deepseek-v3",
     "DeepSeek-V3: 256 FP8 experts top-8 (sigmoid + correction bias, 8 groups keep 4, renormalised, x 2.5) + 1 shared expert", GateKind::v3,
     256, 8, 7168, 2048, 2048, moe::SharedGate::none, true, "fp8", 2.5f},
    {"deepseek-v3-small", "DeepSeek-V3's layer (routing, FP8 128 x 128 blocks, shared expert) at hidden 256, intermediate 128 (quick)",
     GateKind::v3, 256, 8, 256, 128, 128, moe::SharedGate::none, true, "fp8", 2.5f},
};

inline std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Runs f(begin, end) over [0, n) in chunks on all hardware threads.
template <class F>
inline void parallel_for(std::size_t n, F f) {
  const std::size_t hw = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t threads = std::min(hw, n / 65536 + 1), chunk = (n + threads - 1) / threads;
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(f, std::min(n, t * chunk), std::min(n, (t + 1) * chunk));
  f(std::size_t(0), std::min(n, chunk));
  for (std::thread& th : pool) th.join();
}

enum Tensor { kX, kWGate, kW1, kW3, kW2, kS1, kS3, kS2, kSGate, kTensors };
/// A host tensor. Its memory stays untouched until fill_uniform's threads write it (first touch in
/// parallel: a value-initialised std::vector would zero a gigabyte on one thread first).
struct HostTensor {
  std::unique_ptr<bf16[]> p;
  std::size_t n = 0;
  const bf16* data() const { return n > 0 ? p.get() : nullptr; }
};
using Model = std::array<HostTensor, kTensors>;
inline std::array<const bf16*, kTensors> pointers(const Model& m) {
  std::array<const bf16*, kTensors> ptr{};
  for (int i = 0; i < kTensors; ++i) ptr[i] = m[i].data();
  return ptr;
}

/// v[i] = U[-scale, scale) from the hash of (seed, tensor, i).
inline void fill_uniform(HostTensor& v, std::size_t n, std::uint64_t seed, int tensor, float scale) {
  v.p.reset(new bf16[n]);  // default-initialised: not written yet
  v.n = n;
  const std::uint64_t key = splitmix64(seed ^ splitmix64(static_cast<std::uint64_t>(tensor)));
  bf16* out = v.p.get();
  parallel_for(n, [=](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) {
      const float u = static_cast<float>(splitmix64(key + i) >> 40) * 0x1p-24f;  // [0, 1)
      out[i] = bf16((2.0f * u - 1.0f) * scale);
    }
  });
}

/// x ~ U(-1, 1); every weight ~ U(-s, s) with s = 3/sqrt(fan_in): pre-activations are O(1).
inline Model make_model(const Preset& p, int tokens, std::uint64_t seed) {
  const std::size_t T = tokens, H = p.hidden, I = p.inter, Is = p.shared, E = p.experts;
  auto s = [](std::size_t fan_in) { return 3.0f / std::sqrt(static_cast<float>(fan_in)); };
  Model m;
  fill_uniform(m[kX], T * H, seed, kX, 1.0f);
  fill_uniform(m[kWGate], E * H, seed, kWGate, s(H));
  fill_uniform(m[kW1], E * I * H, seed, kW1, s(H));
  fill_uniform(m[kW3], E * I * H, seed, kW3, s(H));
  fill_uniform(m[kW2], E * H * I, seed, kW2, s(I));
  if (Is > 0) {
    fill_uniform(m[kS1], Is * H, seed, kS1, s(H));
    fill_uniform(m[kS3], Is * H, seed, kS3, s(H));
    fill_uniform(m[kS2], H * Is, seed, kS2, s(Is));
  }
  if (p.shared_gate == moe::SharedGate::sigmoid) fill_uniform(m[kSGate], H, seed, kSGate, s(H));
  return m;
}

/// The fp32 vectors besides the bf16 tensors: gpt-oss's biases (expert projections, router) and
/// DeepSeek-V3's correction bias; empty where the preset has none. Drawn from the seed like the
/// tensors and rounded to bf16, as the checkpoints store them.
struct Biases {
  std::vector<float> b1, b3, b2, router, correction;
};
inline Biases make_biases(const Preset& p, std::uint64_t seed) {
  auto draw = [seed](std::size_t n, int stream, float scale) {
    HostTensor t;
    fill_uniform(t, n, seed, 100 + stream, scale);
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = t.p[i].to_float();
    return v;
  };
  const std::size_t E = p.experts, H = p.hidden, I = p.inter;
  Biases b;
  if (p.biases) {
    b.b1 = draw(E * I, 0, 1.0f);
    b.b3 = draw(E * I, 1, 1.0f);
    b.b2 = draw(E * H, 2, 0.25f);
    b.router = draw(E, 3, 0.5f);
  }
  if (p.gate == GateKind::v3) {  // multiples of 1/64 in [-1/8, 1/8]: the key ties only on equal scores
    b.correction = draw(E, 4, 0.125f);
    for (float& c : b.correction) c = std::round(c * 64.0f) / 64.0f;
  }
  return b;
}

/// The expert tensors and the shape of their [rows, cols] matrices (all experts stacked).
inline constexpr Tensor kExpertTensors[] = {kW1, kW3, kW2, kS1, kS3, kS2};
inline void expert_shape(const Preset& p, Tensor t, long long& rows, long long& cols) {
  const long long E = p.experts, H = p.hidden, I = p.inter, Is = p.shared;
  switch (t) {
    case kW1:
    case kW3:
      rows = E * I;
      cols = H;
      return;
    case kW2:
      rows = E * H;
      cols = I;
      return;
    case kS1:
    case kS3:
      rows = Is;
      cols = H;
      return;
    case kS2:
      rows = H;
      cols = Is;
      return;
    default: rows = cols = 0; return;
  }
}

/// How many experts a tensor stacks (the shared expert's tensors: one).
inline long long expert_count(const Preset& p, Tensor t) { return t == kW1 || t == kW3 || t == kW2 ? p.experts : 1; }

}  // namespace demo
