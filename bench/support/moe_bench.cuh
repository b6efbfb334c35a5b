// bench/support/moe_bench.cuh — the MoE layer benchmarks' shared harness (bench_moe.cu,
// bench_lora.cu): model weights made on the device from a hash (one model at a time, cached),
// quantized weights made on the host (one model and kind at a time), and MoeBench, one
// moe::Layer on a model shape with its inputs, outputs, workspace, run entry points and the
// bytes / FLOPs it must move (see bench_moe.cu's file comment). Included once per benchmark
// binary (one translation unit each): everything is in an anonymous namespace.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "bench_util.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/router.hpp"
#include "deepshock/lora/adapter.hpp"
#include "deepshock/models/presets.hpp"
#include "deepshock/moe/activation.hpp"
#include "deepshock/moe/layer.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/quant/fp4.hpp"
#include "deepshock/quant/fp8.hpp"
#include "deepshock/quant/int4.hpp"

namespace {
namespace ds = deepshock;
namespace gate = deepshock::gate;
namespace moe = deepshock::moe;
namespace rt = deepshock::rt;
namespace bench = deepshock::bench;
namespace models = deepshock::models;
using ds::bf16;
using ds::Status;

// ---- model shapes (deepshock/models/presets.hpp) -------------------------------------------------------
using models::DeepSeekV2;  // 160 experts, 7.5 GB of bf16 expert weights
using models::DeepSeekV2Lite;
using models::DeepSeekV3;  // the routed part + 1 shared expert; 22.5 GB of bf16 expert weights
using models::Mixtral8x7B;
using models::Qwen15MoE;  // sigmoid-gated shared expert
using models::Qwen3_30B_A3B;

// ---- kernels (launched through deepshock::launch) ----------------------------------------------------
constexpr std::uint32_t kSeedX = 11, kSeedGate = 22, kSeedW1 = 33, kSeedW3 = 44, kSeedW2 = 55, kSeedS1 = 66, kSeedS3 = 77, kSeedS2 = 88,
                        kSeedSg = 99;

/// Uniform in [-1, 1) from a 64-bit mix of (i, seed) (splitmix64 finaliser).
DEEPSHOCK_HOST_DEVICE float hash_pm1(unsigned long long i, std::uint32_t seed) {
  unsigned long long z = i + 0x9E3779B97F4A7C15ull * (seed + 1ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}
DEEPSHOCK_KERNEL void fill_kernel(bf16* x, long long n, std::uint32_t seed, float scale) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] = bf16(scale * hash_pm1(static_cast<unsigned long long>(i), seed));
}
Status fill(rt::DeviceBuffer<bf16>& b, std::uint32_t seed, float scale, rt::stream_t s) {
  return ds::launch(fill_kernel, {dim3(4096), dim3(256), 0, s}, b.data(), static_cast<long long>(b.size()), seed, scale);
}
template <class T>
Status alloc(rt::DeviceBuffer<T>& b, std::size_t n) {
  return b.allocate(std::max<std::size_t>(n, 1));
}

// ---- weights: one model at a time ----------------------------------------------------------------------
struct ModelWeights {
  std::string name;
  rt::DeviceBuffer<bf16> w_gate, w1, w3, w2, s1, s3, s2, sg;
  rt::DeviceBuffer<float> bias;
};
std::unique_ptr<ModelWeights>& weight_cache() {
  static std::unique_ptr<ModelWeights> cache;
  return cache;
}

template <class M>
Status load_weights(const ModelWeights*& out, rt::stream_t s) {
  auto& cache = weight_cache();
  if (cache && cache->name == M::kName) {
    out = cache.get();
    return Status::success();
  }
  cache.reset();  // frees the previous model's weights first
  auto w = std::make_unique<ModelWeights>();
  constexpr std::size_t E = M::Gate::kExperts, H = M::kHidden, I = M::kInter, Is = M::kShared;
  const float sh = 3.0f / std::sqrt(static_cast<float>(H)), si = 3.0f / std::sqrt(static_cast<float>(I));
  DEEPSHOCK_RETURN_IF_ERROR(w->w_gate.allocate(E * H));
  DEEPSHOCK_RETURN_IF_ERROR(w->w1.allocate(E * I * H));
  DEEPSHOCK_RETURN_IF_ERROR(w->w3.allocate(E * I * H));
  DEEPSHOCK_RETURN_IF_ERROR(w->w2.allocate(E * H * I));
  DEEPSHOCK_RETURN_IF_ERROR(fill(w->w_gate, kSeedGate, sh, s));
  DEEPSHOCK_RETURN_IF_ERROR(fill(w->w1, kSeedW1, sh, s));
  DEEPSHOCK_RETURN_IF_ERROR(fill(w->w3, kSeedW3, sh, s));
  DEEPSHOCK_RETURN_IF_ERROR(fill(w->w2, kSeedW2, si, s));
  if constexpr (Is > 0) {
    DEEPSHOCK_RETURN_IF_ERROR(w->s1.allocate(Is * H));
    DEEPSHOCK_RETURN_IF_ERROR(w->s3.allocate(Is * H));
    DEEPSHOCK_RETURN_IF_ERROR(w->s2.allocate(H * Is));
    DEEPSHOCK_RETURN_IF_ERROR(fill(w->s1, kSeedS1, sh, s));
    DEEPSHOCK_RETURN_IF_ERROR(fill(w->s3, kSeedS3, sh, s));
    DEEPSHOCK_RETURN_IF_ERROR(fill(w->s2, kSeedS2, 3.0f / std::sqrt(static_cast<float>(Is)), s));
  }
  if constexpr (models::sigmoid_shared_gate<M>()) {
    static_assert(Is > 0, "a sigmoid shared gate needs a shared expert");
    DEEPSHOCK_RETURN_IF_ERROR(w->sg.allocate(H));
    DEEPSHOCK_RETURN_IF_ERROR(fill(w->sg, kSeedSg, sh, s));
  }
  if constexpr (M::Gate::kUsesBias) {
    DEEPSHOCK_RETURN_IF_ERROR(w->bias.allocate(E));
    DEEPSHOCK_RETURN_IF_ERROR(w->bias.fill_bytes(0, s));  // zeros
  }
  DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(s));
  w->name = M::kName;
  cache = std::move(w);
  out = cache.get();
  return Status::success();
}

/// Quantized expert weights of a model (quant/ rows), made once per model and kind on the host:
/// int8 (hash-based values in [-127, 127], one fp32 scale per row giving the bf16 rows' ranges),
/// int4 (hash-based bytes of two 4-bit codes, fp16 scales per group of 128 inputs), or FP4
/// (hash-based bytes of two E2M1 codes; MXFP4: the E8M0 scale 2^e nearest range / 6 per 32 inputs;
/// NVFP4: E4M3 448 per 16 inputs and a global factor range / 2688 per expert matrix).
using Int4Codec = deepshock::quant::Int4Group<128>;
enum class QuantKind { int8, int4, mxfp4, nvfp4, fp8 };
template <class Codec>
constexpr QuantKind quant_kind() {
  if constexpr (std::is_same_v<Codec, deepshock::quant::Mxfp4>) return QuantKind::mxfp4;
  else if constexpr (std::is_same_v<Codec, deepshock::quant::Nvfp4>) return QuantKind::nvfp4;
  else if constexpr (std::is_base_of_v<deepshock::quant::Fp8Block, Codec>) return QuantKind::fp8;  // and Fp8BlockA8
  else if constexpr (deepshock::quant::grouped_v<Codec>) return QuantKind::int4;
  else return QuantKind::int8;
}
struct QuantWeights {
  std::string name;
  QuantKind kind = QuantKind::int8;
  rt::DeviceBuffer<std::int8_t> w1, w3, w2, s1, s3, s2;  // int8 values or packed 4-bit codes
  rt::DeviceBuffer<float> w1_scale, w3_scale, w2_scale, s1_scale, s3_scale, s2_scale;
  rt::DeviceBuffer<std::uint16_t> w1_gs, w3_gs, w2_gs, s1_gs, s3_gs, s2_gs;  // int4: [experts][K / 128][rows]
  rt::DeviceBuffer<std::uint8_t> bs[6];                                      // FP4 block scales of w1, w3, w2, s1, s3, s2
  rt::DeviceBuffer<float> global[6];                                         // NVFP4: [experts] of each
  rt::DeviceBuffer<float> blocks[6];                                         // FP8: the 128 x 128 block scales of each
};
std::unique_ptr<QuantWeights>& quant_cache() {
  static std::unique_ptr<QuantWeights> cache;
  return cache;
}
/// Hash-based bits of stored weight i of the matrix seeded `seed` (splitmix64's finaliser).
std::uint64_t weight_hash(std::uint32_t seed, std::size_t i) {
  std::uint64_t z = (static_cast<std::uint64_t>(seed) << 40) + i + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
Status fill_int8(rt::DeviceBuffer<std::int8_t>& q, rt::DeviceBuffer<float>& scale, std::size_t rows, std::size_t cols, std::uint32_t seed,
                 float range, rt::stream_t s) {
  std::vector<std::int8_t> h(rows * cols);
  for (std::size_t i = 0; i < h.size(); ++i) {
    h[i] = static_cast<std::int8_t>(static_cast<int>(weight_hash(seed, i) % 255u) - 127);
  }
  const std::vector<float> sc(rows, range / 127.0f);
  DEEPSHOCK_RETURN_IF_ERROR(q.allocate(h.size()));
  DEEPSHOCK_RETURN_IF_ERROR(scale.allocate(sc.size()));
  DEEPSHOCK_RETURN_IF_ERROR(q.copy_from_host(h.data(), h.size(), s));
  DEEPSHOCK_RETURN_IF_ERROR(scale.copy_from_host(sc.data(), sc.size(), s));
  return rt::stream_synchronize(s);  // the host vectors go out of scope
}
/// int4: `rows` x `cols` codes (cols / 2 bytes per row) and fp16 scales [cols / 128][rows] (one
/// expert; stacked experts have rows = E x per-expert rows and the same scale count).
Status fill_int4(rt::DeviceBuffer<std::int8_t>& q, rt::DeviceBuffer<std::uint16_t>& scale, std::size_t rows, std::size_t cols,
                 std::uint32_t seed, float range, rt::stream_t s) {
  std::vector<std::int8_t> h(rows * cols / 2);
  for (std::size_t i = 0; i < h.size(); ++i) {
    h[i] = static_cast<std::int8_t>(weight_hash(seed, i));
  }
  const std::vector<std::uint16_t> sc(rows * (cols / Int4Codec::kGroup), deepshock::fp16(range / 7.0f).bits);
  DEEPSHOCK_RETURN_IF_ERROR(q.allocate(h.size()));
  DEEPSHOCK_RETURN_IF_ERROR(scale.allocate(sc.size()));
  DEEPSHOCK_RETURN_IF_ERROR(q.copy_from_host(h.data(), h.size(), s));
  DEEPSHOCK_RETURN_IF_ERROR(scale.copy_from_host(sc.data(), sc.size(), s));
  return rt::stream_synchronize(s);
}
/// FP4: `rows` x `cols` codes (cols / 2 hash-based bytes per row) over `experts` stacked experts,
/// block scales [cols / G][rows] per expert and (NVFP4) a global factor per expert.
Status fill_fp4(rt::DeviceBuffer<std::int8_t>& q, rt::DeviceBuffer<std::uint8_t>& scale, rt::DeviceBuffer<float>& global, QuantKind kind,
                std::size_t experts, std::size_t rows, std::size_t cols, std::uint32_t seed, float range, rt::stream_t s) {
  rt::DeviceBuffer<std::uint16_t> unused;
  DEEPSHOCK_RETURN_IF_ERROR(fill_int4(q, unused, rows, cols, seed, range, s));  // any byte is two valid codes
  const bool nv = kind == QuantKind::nvfp4;
  const std::size_t group = nv ? 16 : 32;
  const std::uint8_t bits =
      nv ? deepshock::fp8_e4m3(448.0f).bits : static_cast<std::uint8_t>(127 + static_cast<int>(std::lround(std::log2(range / 6.0f))));
  const std::vector<std::uint8_t> sc(rows * (cols / group), bits);
  const std::vector<float> g(experts, range / 2688.0f);
  DEEPSHOCK_RETURN_IF_ERROR(scale.allocate(sc.size()));
  DEEPSHOCK_RETURN_IF_ERROR(scale.copy_from_host(sc.data(), sc.size(), s));
  if (nv) {
    DEEPSHOCK_RETURN_IF_ERROR(global.allocate(g.size()));
    DEEPSHOCK_RETURN_IF_ERROR(global.copy_from_host(g.data(), g.size(), s));
  }
  return rt::stream_synchronize(s);
}
/// FP8: `rows` x `cols` E4M3 codes (hash-based bytes, the two NaN encodings moved to ±448) over
/// `experts` stacked experts and one scale range / 448 per 128 x 128 block.
Status fill_fp8(rt::DeviceBuffer<std::int8_t>& q, rt::DeviceBuffer<float>& scale, std::size_t experts, std::size_t rows, std::size_t cols,
                std::uint32_t seed, float range, rt::stream_t s) {
  std::vector<std::int8_t> h(rows * cols);
  for (std::size_t i = 0; i < h.size(); ++i) {
    auto b = static_cast<std::uint8_t>(weight_hash(seed, i));
    if ((b & 0x7Fu) == 0x7Fu) --b;
    h[i] = static_cast<std::int8_t>(b);
  }
  const std::size_t per = rows / experts;
  const std::vector<float> sc(experts * ((per + 127) / 128) * ((cols + 127) / 128), range / 448.0f);
  DEEPSHOCK_RETURN_IF_ERROR(q.allocate(h.size()));
  DEEPSHOCK_RETURN_IF_ERROR(scale.allocate(sc.size()));
  DEEPSHOCK_RETURN_IF_ERROR(q.copy_from_host(h.data(), h.size(), s));
  DEEPSHOCK_RETURN_IF_ERROR(scale.copy_from_host(sc.data(), sc.size(), s));
  return rt::stream_synchronize(s);
}
template <class M, QuantKind Kind = QuantKind::int8>
Status load_quant_weights(const QuantWeights*& out, rt::stream_t s) {
  auto& cache = quant_cache();
  if (cache && cache->name == M::kName && cache->kind == Kind) {
    out = cache.get();
    return Status::success();
  }
  cache.reset();
  auto w = std::make_unique<QuantWeights>();
  constexpr std::size_t E = M::Gate::kExperts, H = M::kHidden, I = M::kInter, Is = M::kShared;
  const float sh = 3.0f / std::sqrt(static_cast<float>(H)), si = 3.0f / std::sqrt(static_cast<float>(I));
  auto fill_q = [&](int m, rt::DeviceBuffer<std::int8_t>& q, rt::DeviceBuffer<float>& s8, rt::DeviceBuffer<std::uint16_t>& s4,
                    std::size_t experts, std::size_t rows, std::size_t cols, std::uint32_t seed, float range) {
    if (Kind == QuantKind::int4) return fill_int4(q, s4, rows, cols, seed, range, s);
    if (Kind == QuantKind::int8) return fill_int8(q, s8, rows, cols, seed, range, s);
    if (Kind == QuantKind::fp8) return fill_fp8(q, w->blocks[m], experts, rows, cols, seed, range, s);
    return fill_fp4(q, w->bs[m], w->global[m], Kind, experts, rows, cols, seed, range, s);
  };
  DEEPSHOCK_RETURN_IF_ERROR(fill_q(0, w->w1, w->w1_scale, w->w1_gs, E, E * I, H, kSeedW1, sh));
  DEEPSHOCK_RETURN_IF_ERROR(fill_q(1, w->w3, w->w3_scale, w->w3_gs, E, E * I, H, kSeedW3, sh));
  DEEPSHOCK_RETURN_IF_ERROR(fill_q(2, w->w2, w->w2_scale, w->w2_gs, E, E * H, I, kSeedW2, si));
  if constexpr (Is > 0) {
    DEEPSHOCK_RETURN_IF_ERROR(fill_q(3, w->s1, w->s1_scale, w->s1_gs, 1, Is, H, kSeedS1, sh));
    DEEPSHOCK_RETURN_IF_ERROR(fill_q(4, w->s3, w->s3_scale, w->s3_gs, 1, Is, H, kSeedS3, sh));
    DEEPSHOCK_RETURN_IF_ERROR(fill_q(5, w->s2, w->s2_scale, w->s2_gs, 1, H, Is, kSeedS2, 3.0f / std::sqrt(static_cast<float>(Is))));
  }
  w->name = M::kName;
  w->kind = Kind;
  cache = std::move(w);
  out = cache.get();
  return Status::success();
}

// ---- one (model, T) --------------------------------------------------------------------------------------
template <class M, class Tuning = moe::GemmTuning, class Codec = deepshock::quant::None, class Adapter = deepshock::lora::None>
struct MoeBench {
  using Gate = typename M::Gate;
  using ExpertT = moe::Expert<Codec, Adapter>;
  using LayerT = moe::Layer<Gate, ExpertT, bf16, moe::OrderedCombine, Tuning>;
  /// Stored bytes per expert weight (two 4-bit codes share a byte).
  static constexpr double kWeightBytes =
      static_cast<double>(sizeof(typename moe::LayerWeights<bf16, moe::Expert<Codec>>::W)) / deepshock::quant::pack_v<Codec>;
  static constexpr int E = Gate::kExperts, K = Gate::kTopK, H = M::kHidden, I = M::kInter, Is = M::kShared;
  static constexpr bool kSigmoidGate = models::sigmoid_shared_gate<M>();

  explicit MoeBench(int tokens) : T(tokens), layer(moe::LayerDims{H, I, Is, tokens}, models::params<M>(), models::options<M>()) {}

  int T;
  LayerT layer;
  bench::GpuContext ctx;
  const ModelWeights* mw = nullptr;
  const QuantWeights* qw = nullptr;
  moe::LayerWeights<bf16, ExpertT> w;
  const int* adapter_ids = nullptr;  ///< LoRA: [T] token adapters (bench_lora.cu)
  rt::DeviceBuffer<bf16> x, y;
  rt::DeviceBuffer<int> ids, counts;
  rt::DeviceBuffer<float> weights;
  rt::DeviceBuffer<unsigned char> workspace;
  int touched = 0;
  long long assignments = 0;

  rt::stream_t s() const { return ctx.s(); }

  /// Context, weights, x, outputs, workspace; one Layer::run (warm-up) whose counts give the
  /// touched experts and the routed assignments.
  Status init() {
    DEEPSHOCK_RETURN_IF_ERROR(layer.status());
    DEEPSHOCK_RETURN_IF_ERROR(ctx.init());
    DEEPSHOCK_RETURN_IF_ERROR(load_weights<M>(mw, s()));
    w.w_gate = mw->w_gate.data();
    w.gate_bias = Gate::kUsesBias ? mw->bias.data() : nullptr;
    w.gate_bias_size = Gate::kUsesBias ? E : 0;
    if constexpr (Codec::kIdentity) {
      w.w1 = mw->w1.data();
      w.w3 = mw->w3.data();
      w.w2 = mw->w2.data();
      if (Is > 0) {
        w.shared_w1 = mw->s1.data();
        w.shared_w3 = mw->s3.data();
        w.shared_w2 = mw->s2.data();
      }
    } else {
      constexpr QuantKind kKind = quant_kind<Codec>();
      DEEPSHOCK_RETURN_IF_ERROR((load_quant_weights<M, kKind>(qw, s())));
      using W = typename moe::LayerWeights<bf16, ExpertT>::W;
      auto q = [](const rt::DeviceBuffer<std::int8_t>& b) { return reinterpret_cast<const W*>(b.data()); };
      w.w1 = q(qw->w1);
      w.w3 = q(qw->w3);
      w.w2 = q(qw->w2);
      if (Is > 0) {
        w.shared_w1 = q(qw->s1);
        w.shared_w3 = q(qw->s3);
        w.shared_w2 = q(qw->s2);
      }
      if constexpr (kKind != QuantKind::int8) {
        // Group codecs: one MatrixData per matrix (w1, w3, w2, then the shared expert's).
        const std::uint16_t* gs[6] = {qw->w1_gs.data(), qw->w3_gs.data(), qw->w2_gs.data(),
                                      qw->s1_gs.data(), qw->s3_gs.data(), qw->s2_gs.data()};
        auto d = [&](int m) {
          if constexpr (kKind == QuantKind::fp8) return typename Codec::MatrixData{qw->blocks[m].data()};
          else if constexpr (kKind == QuantKind::int4) return typename Codec::MatrixData{gs[m], nullptr};
          else return typename Codec::MatrixData{qw->bs[m].data(), kKind == QuantKind::nvfp4 ? qw->global[m].data() : nullptr};
        };
        w.codec.w1 = d(0);
        w.codec.w3 = d(1);
        w.codec.w2 = d(2);
        if (Is > 0) {
          w.codec.shared_w1 = d(3);
          w.codec.shared_w3 = d(4);
          w.codec.shared_w2 = d(5);
        }
      } else {
        w.codec.w1_scale = qw->w1_scale.data();
        w.codec.w3_scale = qw->w3_scale.data();
        w.codec.w2_scale = qw->w2_scale.data();
        if (Is > 0) {
          w.codec.shared_w1_scale = qw->s1_scale.data();
          w.codec.shared_w3_scale = qw->s3_scale.data();
          w.codec.shared_w2_scale = qw->s2_scale.data();
        }
      }
    }
    if (kSigmoidGate) {
      w.shared_gate = mw->sg.data();
      w.shared_gate_kind = moe::SharedGate::sigmoid;
    }
    const std::size_t tn = static_cast<std::size_t>(T);
    DEEPSHOCK_RETURN_IF_ERROR(x.allocate(tn * H));
    DEEPSHOCK_RETURN_IF_ERROR(y.allocate(tn * H));
    DEEPSHOCK_RETURN_IF_ERROR(ids.allocate(tn * K));
    DEEPSHOCK_RETURN_IF_ERROR(weights.allocate(tn * K));
    DEEPSHOCK_RETURN_IF_ERROR(counts.allocate(E));
    DEEPSHOCK_RETURN_IF_ERROR(alloc(workspace, layer.workspace_bytes()));
    DEEPSHOCK_RETURN_IF_ERROR(fill(x, kSeedX, 1.0f, s()));
    DEEPSHOCK_RETURN_IF_ERROR(run());
    std::vector<int> h_counts(E);
    DEEPSHOCK_RETURN_IF_ERROR(counts.copy_to_host(h_counts.data(), h_counts.size(), s()));
    DEEPSHOCK_RETURN_IF_ERROR(ctx.stream.synchronize());
    for (const int c : h_counts) {
      touched += c > 0 ? 1 : 0;
      assignments += c;
    }
    return Status::success();
  }

  moe::LayerInputs<bf16> inputs() const {
    moe::LayerInputs<bf16> in{x.data(), T, 0, nullptr};
    in.adapter_ids = adapter_ids;
    return in;
  }
  moe::LayerOutputs<bf16> outputs() const { return {y.data(), 0, ids.data(), weights.data(), counts.data(), nullptr}; }

  Status run(moe::RunOptions options = {}) const {
    return layer.run(inputs(), w, outputs(), workspace.data(), workspace.size(), s(), options);
  }
  Status run_routed(moe::Stage stop = moe::Stage::all) const {
    moe::LayerOutputs<bf16> o;
    o.y = y.data();
    return layer.run_routed(inputs(), ids.data(), weights.data(), w, o, workspace.data(), workspace.size(), s(),
                            moe::RunOptions{.check_ids = false, .stop_after = stop});
  }
  Status route() const {
    gate::GateInputs<bf16> in{x.data(), w.w_gate, nullptr, T, H, w.gate_bias, w.gate_bias_size};
    gate::RoutingOutputs o;
    o.topk_ids = ids.data();
    o.topk_weights = weights.data();
    o.expert_counts = counts.data();
    return layer.router().run(in, o, workspace.data(), workspace.size(), s());
  }

  /// Bytes and FLOPs of the experts + combine (routed/, cublas_loop/); with_router adds the gate.
  double bytes(bool with_router) const {
    // Weights: kWeightBytes each, plus the codec's scales: int8, one fp32 per output channel of
    // W1, W3, W2; group codecs, one stored scale per group (int4: 2 bytes per 128 weights; MXFP4:
    // 1 per 32; NVFP4: 1 per 16, its per-matrix factors negligible).
    auto scales = [](double rows, double cols) {
      if constexpr (Codec::kIdentity) return 0.0 * rows * cols;
      else if constexpr (std::is_base_of_v<deepshock::quant::Fp8Block, Codec>)  // one fp32 per 128 x 128 block
        return 4.0 * std::ceil(rows / 128.0) * std::ceil(cols / 128.0);
      else if constexpr (deepshock::quant::grouped_v<Codec>)
        return static_cast<double>(sizeof(deepshock::quant::scale_bits_t<Codec>)) * rows * cols / Codec::kGroup /
               deepshock::quant::scale_share_v<Codec>;
      else return 4.0 * rows + 0.0 * cols;
    };
    double b = 4.0 * T * H + 8.0 * T * K + touched * (3.0 * kWeightBytes * H * I + 2.0 * scales(I, H) + scales(H, I)) +
               (Is > 0 ? 3.0 * kWeightBytes * H * Is + 2.0 * scales(Is, H) + scales(H, Is) : 0.0) + (kSigmoidGate ? 2.0 * H : 0.0);
    if (with_router) b += 2.0 * E * H + (Gate::kUsesBias ? 4.0 * E : 0.0);
    return b;
  }
  double flops(bool with_router) const {
    double f = 6.0 * H * I * static_cast<double>(assignments) + 6.0 * H * Is * static_cast<double>(T) + (kSigmoidGate ? 2.0 * T * H : 0.0);
    if (with_router) f += 2.0 * T * E * H;
    return f;
  }
  void counters(benchmark::State& state, double b, double f) const {
    // Quantized activations multiply on the 8-bit tensor cores: their peak is the FLOP roofline.
    constexpr bool k8BitMath = deepshock::quant::act_int8_v<Codec> || deepshock::quant::act_fp8_v<Codec>;
    const double peak = k8BitMath ? bench::kH200DenseFp8FlopPerSecond : bench::kH200DenseBf16FlopPerSecond;
    bench::set_roofline_counters(state, b, f, bench::kH200HbmBytesPerSecond, peak, ctx.timer.total_seconds());
    state.counters["experts_touched"] = touched;
  }
};

template <class M>
std::string model_label() {
  using G = typename M::Gate;
  return std::string(M::kName) + ": " + G::kName + " E=" + std::to_string(G::kExperts) + " k=" + std::to_string(G::kTopK) +
         " H=" + std::to_string(M::kHidden) + " I=" + std::to_string(M::kInter) +
         (M::kShared > 0 ? " shared=" + std::to_string(M::kShared) : "") + " bf16";
}

/// Times `work` (launches only) in the benchmark loop; false after an error.
template <class Bench, class Work>
bool time_loop(benchmark::State& state, Bench& b, Work&& work) {
  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, b.ctx.timer, b.ctx.l2, b.s(), work)) return false;
  return true;
}

/// main() of a MoE benchmark binary: skip cleanly without a device, 0.05 s of GPU time per
/// benchmark unless --benchmark_min_time says otherwise, and free the cached weights before
/// returning (not in a static destructor, which could run after the CUDA runtime has shut down).
int moe_bench_main(int argc, char** argv) {
  const int rc = deepshock::bench::bench_main(argc, argv, /*needs_device=*/true, /*default_min_time=*/"0.05");
  weight_cache().reset();
  quant_cache().reset();
  return rc;
}

}  // namespace
