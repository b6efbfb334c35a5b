// bench/bench_moe.cu — the MoE layer moe::Layer<Gate, moe::Expert<>, bf16> (SwiGLU experts, ordered
// combine) on published model shapes (deepshock/models/presets.hpp) (nvcc, Google Benchmark, CUDA-event manual
// time, JSON-friendly counters), against a per-expert cuBLAS loop.
//
// For each model and T in {1, 8, 32, 128, 1024, 8192} tokens, bf16 weights and activations:
//   layer/<model>/T:n        Layer::run: router + dispatch + grouped GEMMs + shared expert + combine
//                            (programmatic dependent launches, the default: RunOptions)
//   layer_plain/<model>/T:n  layer/ with RunOptions::dependent_launch = false (every kernel in
//                            plain stream order; DeepSeek-V2-Lite, T in {1, 8, 32})
//   layer_graph/<model>/T:n  layer/ captured once in a CUDA graph and replayed, as engines run
//                            decode steps (DeepSeek-V2-Lite, T in {1, 8, 32})
//   routed/<model>/T:n       Layer::run_routed (RunOptions{.check_ids = false}) on the ids and
//                            weights of one Layer::run: everything but the router
//   router/<model>/T:n       gate::Router::run alone (DeepSeek-V2-Lite only)
//   dispatch/<model>/T:n     moe::dispatch alone (DeepSeek-V2-Lite only)
//   through_dispatch/<model>/T:n, through_gemm1/<model>/T:n  routed/ stopped after dispatch and
//                            after grouped GEMM 1 (RunOptions::stop_after; DeepSeek-V2-Lite only):
//                            GEMM 1 = through_gemm1 - through_dispatch, GEMM 2 + combine =
//                            routed - through_gemm1. Bytes of through_gemm1: x, ids, weights, the
//                            touched experts' W1 and W3, h written (2TkI) and the shared W1, W3;
//                            FLOPs: GEMM 1's. through_dispatch: the bytes of dispatch/.
//   tiles/<model>/<tuning>/T:n  routed/ with other grouped-GEMM tile tunings (moe::GemmTuningOf;
//                            DeepSeek-V2-Lite and Qwen3 only, T in {1, 8, 32, 1024, 8192}): the
//                            data to choose moe::GemmTuning from; hopper_wgmma
//                            (moe::HopperGemmTuning) runs last; stream_k (moe::StreamKGemmTuning,
//                            the decode tiles on one wave of blocks) for every model at T in
//                            {1, 8, 32}
//   quant/<model>/int8_channel/T:n  layer/ with int8 experts (quant::Int8Channel, W8A16: one fp32
//                            scale per output channel, bf16 activations; T in {1, 8, 32, 4096}):
//                            bytes count 1 per expert weight plus the scales, so its
//                            pct_of_bw_roofline says how close the int8 layer runs to HBM speed,
//                            and layer/ over quant/ is its speedup (target: >= 1.8x at decode)
//   quant/<model>/w8a8_int8/T:n  the same int8 weights with activations quantized per token
//                            (quant::Int8ChannelA8, int8 tensor-core GEMMs; target at T = 4096:
//                            >= 1.6x layer/)
//   quant/<model>/uint4b8_g128/T:n  4-bit experts, one fp16 scale per 128 inputs
//                            (quant::Int4Group<128>, W4A16): half a byte per weight plus 2 bytes
//                            per 128 (target at T <= 16: >= 3.5x layer/, >= 80% of HBM on the
//                            packed bytes)
//   quant/<model>/mxfp4/T:n  E2M1 experts with an E8M0 scale per 32 inputs (quant::Mxfp4, W4A16;
//                            4.25 bits per weight; target at decode: >= 3.3x layer/)
//   quant/<model>/nvfp4/T:n  E2M1 experts with an E4M3 scale per 16 inputs and an fp32 factor per
//                            expert matrix (quant::Nvfp4, W4A16; 4.5 bits per weight)
//   quant/<model>/fp8_block128/T:n  E4M3 experts with an fp32 scale per 128 x 128 block
//                            (quant::Fp8Block, W8A16, decoded to bf16 in the mainloop: the path
//                            every architecture runs)
//   quant/<model>/fp8_block128_a8/T:n  the same FP8 weights with activations quantized per token
//                            and 128 inputs (quant::Fp8BlockA8, E4M3 x E4M3 mma.sync on sm_89+;
//                            DeepSeek-V3 and V2-Lite, T in {1, 8, 32, 4096, 8192}; targets:
//                            T = 8192 >= 1.6x layer/ and >= 55% of the dense FP8 peak, decode
//                            >= 1.8x layer/). The quantized-activation rows (int8 and FP8) report
//                            pct_of_flop_roofline against the FP8 / int8 tensor-core peak.
//   quant/<model>/fp8_block128_a8/hopper_wgmma/T:n  the same on Hopper's wgmma prefill tiles
//                            (moe::HopperFp8GemmTuning; T in {1024, 4096, 8192}; registered last,
//                            as tiles/<model>/hopper_wgmma)
//   cublas_loop/<model>/T:n  "per-expert cuBLAS loop, as frameworks do", same routing as routed/:
//                            the tokens are grouped per expert on the host once (untimed); timed:
//                            shared expert as dense GEMMs (cublasGemmEx bf16 in, fp32 compute) with
//                            its down projection writing fp32 y (or a memset of y without one;
//                            Qwen1.5's sigmoid gate: a GEMV for x . w_sg, then y rows scaled),
//                            then for each touched expert a gather of its token rows, GEMMs for W1
//                            and W3 (bf16 out), an elementwise SwiGLU, a GEMM for W2 and a scatter-
//                            add of w * out into fp32 y (no atomics needed: one stream, and each
//                            token appears once per expert), and finally y cast to bf16.
// Before timing, cublas_loop's y is compared with Layer::run's y on the first 256 tokens (max |diff|
// <= 5% of max |y|, reported as max_rel_diff_vs_layer; both round the intermediate h to bf16, the
// loop also its W1/W3/W2 outputs): a wrong layer or loop fails the row.
//
// Bytes (what must move: every input read once, every output written once):
//   2TH (x) + 2TH (y) + 8Tk (ids + weights) + touched x 3HI x 2 (the routed experts this routing
//   touches, from expert_counts of a warm-up run) + 3 H Is x 2 (shared) [+ 2H shared gate]
//   [+ 2EH router weights + 4E bias, layer/ only]; router/: 2TH + 2EH + 8Tk + 4E [+ 4E bias].
// FLOPs: 2 x 3 x H x I per routed assignment (T k of them) + 2 x 3 x H x Is x T (shared)
//   [+ 2TH shared gate] [+ 2TEH router, layer/ and router/].
// Models: DeepSeek-V2-Lite (with the stage and tile rows), Qwen3-30B-A3B (tile rows), Mixtral
// 8x7B, DeepSeek-V3, then the hopper_wgmma tile rows, then DeepSeek-V2 and Qwen1.5-MoE (sigmoid-
// gated shared expert) last.
// routed/ and cublas_loop/ count the same bytes and FLOPs, so the ratio of their GB/s is the ratio
// of their times; layer/ adds the router on top. Counters (bench_util.hpp, set_roofline_counters):
// bytes_per_second, pct_of_bw_roofline (4.8 TB/s), flop_per_second, pct_of_flop_roofline
// (989 TFLOP/s dense bf16; datasheet leads), plus experts_touched.
//
// Timing as bench_router.cu: CUDA events around one iteration after an untimed L2 flush (cold L2:
// weights come from HBM). Weights are allocated and filled (hash-based uniform, +-3/sqrt(fan_in))
// once per model and kept until the next model's first benchmark (benchmarks run in registration
// order) or the end of main. Without a GPU the binary prints one line and exits 0.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <cublas_v2.h>

#include "bench_util.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/router.hpp"
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
/// out[r] = x[tok[r]] for r < rows; one block per row, 16-byte vectors (H % 8 == 0).
DEEPSHOCK_KERNEL void gather_rows_kernel(const bf16* x, const int* tok, int H, bf16* out) {
  const long long r = blockIdx.x;
  const uint4* src = reinterpret_cast<const uint4*>(x + static_cast<long long>(tok[r]) * H);
  uint4* dst = reinterpret_cast<uint4*>(out + r * H);
  for (int v = static_cast<int>(threadIdx.x); v < H / 8; v += static_cast<int>(blockDim.x)) dst[v] = src[v];
}
/// g = bf16(silu(g) * u), elementwise.
DEEPSHOCK_KERNEL void swiglu_kernel(bf16* g, const bf16* u, long long n) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) g[i] = bf16(ds::act::SwiGLU::apply(g[i].to_float(), u[i].to_float()));
}
/// y[tok[r]] += w[r] * o[r]; one block per row.
DEEPSHOCK_KERNEL void scatter_add_kernel(const bf16* o, const int* tok, const float* w, int H, float* y) {
  const long long r = blockIdx.x;
  const float s = w[r];
  float* dst = y + static_cast<long long>(tok[r]) * H;
  for (int h = static_cast<int>(threadIdx.x); h < H; h += static_cast<int>(blockDim.x)) dst[h] += s * o[r * H + h].to_float();
}
/// y[t] *= sigmoid(logit[t]); one block per row (the sigmoid-gated shared expert).
DEEPSHOCK_KERNEL void scale_rows_sigmoid_kernel(float* y, const float* logit, int H) {
  const long long t = blockIdx.x;
  const float g = 1.0f / (1.0f + expf(-logit[t]));
  for (int h = static_cast<int>(threadIdx.x); h < H; h += static_cast<int>(blockDim.x)) y[t * H + h] *= g;
}
DEEPSHOCK_KERNEL void cast_kernel(const float* y32, long long n, bf16* y) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = bf16(y32[i]);
}

unsigned blocks_for(long long n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

Status fill(rt::DeviceBuffer<bf16>& b, std::uint32_t seed, float scale, rt::stream_t s) {
  return ds::launch(fill_kernel, {dim3(4096), dim3(256), 0, s}, b.data(), static_cast<long long>(b.size()), seed, scale);
}
template <class T>
Status alloc(rt::DeviceBuffer<T>& b, std::size_t n) {
  return b.allocate(std::max<std::size_t>(n, 1));
}

// ---- cuBLAS -------------------------------------------------------------------------------------------
Status from_cublas(cublasStatus_t st, const char* call) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::success();
  return Status::runtime_error(std::string(call) + ": " + cublasGetStatusName(st) + " (" + cublasGetStatusString(st) + ")");
}
/// The process's handle, created on first use and never destroyed (as in bench_router.cu), bound to `s`.
Status bind_blas(cublasHandle_t& h, rt::stream_t s) {
  static cublasHandle_t handle = nullptr;
  static const Status created = from_cublas(cublasCreate(&handle), "cublasCreate");
  DEEPSHOCK_RETURN_IF_ERROR(created);
  h = handle;
  return from_cublas(cublasSetStream(h, s), "cublasSetStream");
}
/// Row-major C[rows, n] (= beta C +) X[rows, k] . W[n, k]^T, bf16 X and W, fp32 compute, C bf16 or
/// fp32 (ctype). Column-major view: C^T[n, rows] = op_T(W)[n, k] . X^T[k, rows] (see bench_router.cu).
Status gemm_xwt(cublasHandle_t h, const bf16* X, const bf16* W, void* C, cudaDataType_t ctype, int rows, int n, int k, float beta) {
  const float alpha = 1.0f;
  return from_cublas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, &alpha, W, CUDA_R_16BF, k, X, CUDA_R_16BF, k, &beta, C, ctype, n,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "cublasGemmEx");
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
template <class M, class Tuning = moe::GemmTuning, class Codec = deepshock::quant::None>
struct MoeBench {
  using Gate = typename M::Gate;
  using LayerT = moe::Layer<Gate, moe::Expert<Codec>, bf16, moe::OrderedCombine, Tuning>;
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
  moe::LayerWeights<bf16, moe::Expert<Codec>> w;
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
      using W = typename moe::LayerWeights<bf16, moe::Expert<Codec>>::W;
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

  moe::LayerInputs<bf16> inputs() const { return {x.data(), T, 0, nullptr}; }
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

/// The per-expert cuBLAS loop on the routing of a MoeBench (its ids and weights, after init).
template <class M>
struct CublasLoop {
  static constexpr int E = M::Gate::kExperts, K = M::Gate::kTopK, H = M::kHidden, I = M::kInter, Is = M::kShared;
  const MoeBench<M>& b;
  cublasHandle_t blas{};
  std::vector<int> offsets;  // [E + 1] rows of each expert in the grouped order
  rt::DeviceBuffer<int> tok;
  rt::DeviceBuffer<float> wt, y32, sg_logit;
  rt::DeviceBuffer<bf16> xg, g1, g3, o2, sg1, sg3, y;

  explicit CublasLoop(const MoeBench<M>& bench) : b(bench) {}

  /// Host grouping of the routing (token order within an expert) and the buffers.
  Status init() {
    DEEPSHOCK_RETURN_IF_ERROR(bind_blas(blas, b.s()));
    const std::size_t n = static_cast<std::size_t>(b.T) * K, tn = static_cast<std::size_t>(b.T);
    std::vector<int> h_ids(n);
    std::vector<float> h_w(n);
    DEEPSHOCK_RETURN_IF_ERROR(b.ids.copy_to_host(h_ids.data(), n, b.s()));
    DEEPSHOCK_RETURN_IF_ERROR(b.weights.copy_to_host(h_w.data(), n, b.s()));
    DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(b.s()));
    offsets.assign(E + 1, 0);
    for (const int id : h_ids)
      if (id >= 0 && id < E) ++offsets[static_cast<std::size_t>(id) + 1];
    for (int e = 0; e < E; ++e) offsets[e + 1] += offsets[e];
    std::vector<int> next(offsets.begin(), offsets.end() - 1), h_tok(static_cast<std::size_t>(offsets[E]));
    std::vector<float> h_wt(h_tok.size());
    for (std::size_t a = 0; a < n; ++a) {
      const int id = h_ids[a];
      if (id < 0 || id >= E) continue;
      const int p = next[static_cast<std::size_t>(id)]++;
      h_tok[static_cast<std::size_t>(p)] = static_cast<int>(a / K);
      h_wt[static_cast<std::size_t>(p)] = h_w[a];
    }
    const std::size_t rows = h_tok.size();
    DEEPSHOCK_RETURN_IF_ERROR(alloc(tok, rows));
    DEEPSHOCK_RETURN_IF_ERROR(alloc(wt, rows));
    DEEPSHOCK_RETURN_IF_ERROR(tok.copy_from_host(h_tok.data(), rows, b.s()));
    DEEPSHOCK_RETURN_IF_ERROR(wt.copy_from_host(h_wt.data(), rows, b.s()));
    DEEPSHOCK_RETURN_IF_ERROR(alloc(xg, rows * H));
    DEEPSHOCK_RETURN_IF_ERROR(alloc(g1, rows * I));
    DEEPSHOCK_RETURN_IF_ERROR(alloc(g3, rows * I));
    DEEPSHOCK_RETURN_IF_ERROR(alloc(o2, rows * H));
    DEEPSHOCK_RETURN_IF_ERROR(alloc(y32, tn * H));
    DEEPSHOCK_RETURN_IF_ERROR(alloc(y, tn * H));
    if (Is > 0) {
      DEEPSHOCK_RETURN_IF_ERROR(alloc(sg1, tn * Is));
      DEEPSHOCK_RETURN_IF_ERROR(alloc(sg3, tn * Is));
    }
    if (MoeBench<M>::kSigmoidGate) DEEPSHOCK_RETURN_IF_ERROR(alloc(sg_logit, tn));
    return rt::stream_synchronize(b.s());
  }

  /// The timed work (launches only).
  Status run() const {
    const rt::stream_t s = b.s();
    const int T = b.T;
    const long long th = static_cast<long long>(T) * H;
    if (Is > 0) {  // shared expert first: its down projection writes y32 (beta 0)
      const long long ti = static_cast<long long>(T) * Is;
      DEEPSHOCK_RETURN_IF_ERROR(gemm_xwt(blas, b.x.data(), b.w.shared_w1, sg1.data(), CUDA_R_16BF, T, Is, H, 0.0f));
      DEEPSHOCK_RETURN_IF_ERROR(gemm_xwt(blas, b.x.data(), b.w.shared_w3, sg3.data(), CUDA_R_16BF, T, Is, H, 0.0f));
      DEEPSHOCK_RETURN_IF_ERROR(ds::launch(swiglu_kernel, {dim3(blocks_for(ti, 256)), dim3(256), 0, s}, sg1.data(), sg3.data(), ti));
      DEEPSHOCK_RETURN_IF_ERROR(gemm_xwt(blas, sg1.data(), b.w.shared_w2, y32.data(), CUDA_R_32F, T, H, Is, 0.0f));
      if (MoeBench<M>::kSigmoidGate) {  // y = sigmoid(x . w_sg) * shared(x), before the routed adds
        DEEPSHOCK_RETURN_IF_ERROR(gemm_xwt(blas, b.x.data(), b.w.shared_gate, sg_logit.data(), CUDA_R_32F, T, 1, H, 0.0f));
        DEEPSHOCK_RETURN_IF_ERROR(
            ds::launch(scale_rows_sigmoid_kernel, {dim3(static_cast<unsigned>(T)), dim3(256), 0, s}, y32.data(), sg_logit.data(), H));
      }
    } else {
      DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(y32.data(), 0, sizeof(float) * static_cast<std::size_t>(th), s));
    }
    const std::size_t ih = static_cast<std::size_t>(I) * H;
    for (int e = 0; e < E; ++e) {
      const int r0 = offsets[e], rows = offsets[e + 1] - r0;
      if (rows == 0) continue;
      const std::size_t ro = static_cast<std::size_t>(r0);
      const long long ri = static_cast<long long>(rows) * I;
      bf16 *xe = xg.data() + ro * H, *ge = g1.data() + ro * I, *ue = g3.data() + ro * I, *oe = o2.data() + ro * H;
      DEEPSHOCK_RETURN_IF_ERROR(
          ds::launch(gather_rows_kernel, {dim3(static_cast<unsigned>(rows)), dim3(128), 0, s}, b.x.data(), tok.data() + ro, H, xe));
      DEEPSHOCK_RETURN_IF_ERROR(gemm_xwt(blas, xe, b.w.w1 + e * ih, ge, CUDA_R_16BF, rows, I, H, 0.0f));
      DEEPSHOCK_RETURN_IF_ERROR(gemm_xwt(blas, xe, b.w.w3 + e * ih, ue, CUDA_R_16BF, rows, I, H, 0.0f));
      DEEPSHOCK_RETURN_IF_ERROR(ds::launch(swiglu_kernel, {dim3(blocks_for(ri, 256)), dim3(256), 0, s}, ge, ue, ri));
      DEEPSHOCK_RETURN_IF_ERROR(gemm_xwt(blas, ge, b.w.w2 + e * ih, oe, CUDA_R_16BF, rows, H, I, 0.0f));
      DEEPSHOCK_RETURN_IF_ERROR(ds::launch(scatter_add_kernel, {dim3(static_cast<unsigned>(rows)), dim3(256), 0, s}, oe, tok.data() + ro,
                                           wt.data() + ro, H, y32.data()));
    }
    return ds::launch(cast_kernel, {dim3(blocks_for(th, 256)), dim3(256), 0, s}, y32.data(), th, y.data());
  }

  /// Runs once and compares y with the layer's y (which init's Layer::run left in b.y) on up to
  /// 256 tokens; `error` is empty when they agree.
  Status warm_up_and_compare(std::string& error, double& rel_diff) {
    const std::size_t n = static_cast<std::size_t>(std::min(b.T, 256)) * H;
    std::vector<bf16> ref(n), got(n);
    DEEPSHOCK_RETURN_IF_ERROR(b.y.copy_to_host(ref.data(), n, b.s()));
    DEEPSHOCK_RETURN_IF_ERROR(run());
    DEEPSHOCK_RETURN_IF_ERROR(y.copy_to_host(got.data(), n, b.s()));
    DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(b.s()));
    double max_ref = 0.0, max_diff = 0.0;
    std::size_t worst = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double r = ref[i].to_float(), g = got[i].to_float();
      if (!std::isfinite(r) || !std::isfinite(g)) {
        error = "non-finite y at token " + std::to_string(i / H) + " column " + std::to_string(i % H);
        return Status::success();
      }
      max_ref = std::max(max_ref, std::abs(r));
      if (std::abs(r - g) > max_diff) {
        max_diff = std::abs(r - g);
        worst = i;
      }
    }
    rel_diff = max_ref > 0.0 ? max_diff / max_ref : max_diff;
    if (!(rel_diff <= 0.05))
      error = "layer and cuBLAS loop disagree: max |diff| " + std::to_string(max_diff) + " at token " + std::to_string(worst / H) +
              " column " + std::to_string(worst % H) + ", max |y| " + std::to_string(max_ref);
    return Status::success();
  }
};

// ---- benchmarks ------------------------------------------------------------------------------------------
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

template <class M>
void BM_layer(benchmark::State& state) {
  state.SetLabel(model_label<M>());
  MoeBench<M> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init())) return;
  if (!time_loop(state, b, [&]() -> Status { return b.run(); })) return;
  b.counters(state, b.bytes(true), b.flops(true));
}

/// layer/ with every kernel in plain stream order (RunOptions::dependent_launch = false): against
/// layer/, what programmatic dependent launches gain (Hopper; elsewhere both are plain).
template <class M>
void BM_layer_plain(benchmark::State& state) {
  state.SetLabel(model_label<M>() + " (plain stream order)");
  MoeBench<M> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init())) return;
  moe::RunOptions plain;
  plain.dependent_launch = false;
  if (!time_loop(state, b, [&]() -> Status { return b.run(plain); })) return;
  b.counters(state, b.bytes(true), b.flops(true));
}

/// layer/ captured once in a CUDA graph and replayed, as engines run their decode steps.
template <class M>
void BM_layer_graph(benchmark::State& state) {
  state.SetLabel(model_label<M>() + " (CUDA graph replay)");
  MoeBench<M> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init())) return;  // init ran the layer once: modules loaded, attributes set
  struct Graph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    ~Graph() {
      if (exec != nullptr) cudaGraphExecDestroy(exec);
      if (graph != nullptr) cudaGraphDestroy(graph);
    }
  } g;
  if (!bench::ok_or_skip(state, rt::from_cuda(cudaStreamBeginCapture(b.s(), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture")))
    return;
  const Status captured = b.run();
  const Status ended = rt::from_cuda(cudaStreamEndCapture(b.s(), &g.graph), "cudaStreamEndCapture");
  if (!bench::ok_or_skip(state, captured) || !bench::ok_or_skip(state, ended) ||
      !bench::ok_or_skip(state, rt::from_cuda(cudaGraphInstantiate(&g.exec, g.graph, 0), "cudaGraphInstantiate")))
    return;
  if (!time_loop(state, b, [&]() -> Status { return rt::from_cuda(cudaGraphLaunch(g.exec, b.s()), "cudaGraphLaunch"); })) return;
  b.counters(state, b.bytes(true), b.flops(true));
}

/// quant/<model>/<codec>: layer/ with quantized experts (see the file comment).
template <class M, class Codec, class Tuning = moe::GemmTuning>
void BM_quant(benchmark::State& state) {
  state.SetLabel(model_label<M>() + " experts " + Codec::kName);
  MoeBench<M, Tuning, Codec> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init())) return;
  if (!time_loop(state, b, [&]() -> Status { return b.run(); })) return;
  b.counters(state, b.bytes(true), b.flops(true));
}

template <class M>
void BM_routed(benchmark::State& state) {
  state.SetLabel(model_label<M>());
  MoeBench<M> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init()) || !bench::ok_or_skip(state, b.run_routed())) return;
  if (!time_loop(state, b, [&]() -> Status { return b.run_routed(); })) return;
  b.counters(state, b.bytes(false), b.flops(false));
}

// Tile tunings for tiles/ (moe::GemmTuningOf<DecodeTile, PrefillTile>; GemmTile<BM, BN, KBytes,
// WarpsM, WarpsN, Stages>). The layer tests check each against the reference in the simulator.
// The alternatives' prefill tiles need 110 KiB, 166 KiB and (hopper_wgmma) 194 KiB of shared
// memory per block (gated GEMM 1): sm_90 only (sm_89 allows 99 KiB, sm_80 163 KiB); elsewhere
// those rows end with the launch's error. hopper_wgmma multiplies with wgmma only in a build for
// sm_90a (scripts/gpu_check.sh builds one), with mma.sync from the same tiles otherwise.
struct TilesDefault {
  using Tuning = moe::GemmTuning;
  static constexpr const char* kName = "default";
  static constexpr const char* kLabel = "decode 16x64 4 warps 4 stages, prefill 64x64 4 warps 3 stages";
};
struct TilesNarrowWide {
  using Tuning = moe::GemmTuningOf<moe::GemmTile<16, 32, 128, 1, 4, 4>, moe::GemmTile<128, 64, 128, 2, 2, 3>>;
  static constexpr const char* kName = "narrow_wide";
  static constexpr const char* kLabel = "decode 16x32 4 warps 4 stages, prefill 128x64 4 warps 3 stages";
};
struct TilesDeepBig {
  using Tuning = moe::GemmTuningOf<moe::GemmTile<16, 64, 128, 1, 4, 6>, moe::GemmTile<128, 128, 128, 2, 4, 3>>;
  static constexpr const char* kName = "deep_big";
  static constexpr const char* kLabel = "decode 16x64 4 warps 6 stages, prefill 128x128 8 warps 3 stages";
};

struct TilesStreamK {
  using Tuning = moe::StreamKGemmTuning;
  static constexpr const char* kName = "stream_k";
  static constexpr const char* kLabel = "decode 16x64 4 warps 4 stages stream-K (one wave of blocks), prefill 64x64 4 warps 3 stages";
};

struct TilesHopper {
  using Tuning = moe::HopperGemmTuning;
  static constexpr const char* kName = "hopper_wgmma";
  static constexpr const char* kLabel = "decode 16x64 4 warps 4 stages, prefill 128x128 wgmma (sm_90a builds) 2 warpgroups 4 stages";
};

/// routed/ with another tile tuning: the data to set moe::GemmTuning from.
template <class M, class Tiles>
void BM_tiles(benchmark::State& state) {
  state.SetLabel(model_label<M>() + " tiles: " + Tiles::kLabel);
  MoeBench<M, typename Tiles::Tuning> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init()) || !bench::ok_or_skip(state, b.run_routed())) return;
  if (!time_loop(state, b, [&]() -> Status { return b.run_routed(); })) return;
  b.counters(state, b.bytes(false), b.flops(false));
}

template <class M>
void BM_router(benchmark::State& state) {
  using G = typename M::Gate;
  state.SetLabel(model_label<M>());
  MoeBench<M> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init()) || !bench::ok_or_skip(state, b.route())) return;
  if (!time_loop(state, b, [&]() -> Status { return b.route(); })) return;
  const double T = static_cast<double>(b.T), E = G::kExperts, H = M::kHidden;
  const double bytes = 2.0 * T * H + 2.0 * E * H + 8.0 * T * G::kTopK + 4.0 * E + (G::kUsesBias ? 4.0 * E : 0.0);
  b.counters(state, bytes, 2.0 * T * E * H);
}

/// Bytes dispatch must move for n = T * k assignments: the ids read twice, three [n] int outputs
/// (sorted token, sorted slot, slot position) and the [E] counts and [E + 1] offsets.
double dispatch_bytes(double n, double E) { return 4.0 * (2.0 * n + 3.0 * n) + 4.0 * (2.0 * E + 1); }

/// Dispatch alone (the stable counting sort of the run's ids): bytes as dispatch_bytes.
template <class M>
void BM_dispatch(benchmark::State& state) {
  using G = typename M::Gate;
  state.SetLabel(model_label<M>() + " (dispatch)");
  MoeBench<M> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init())) return;
  const int T = b.T, k = G::kTopK, E = G::kExperts;
  const std::size_t n = static_cast<std::size_t>(T) * k;
  rt::DeviceBuffer<int> counts, offsets, sorted_token, sorted_slot, position;
  rt::DeviceBuffer<unsigned char> ws;
  const std::size_t ws_bytes = moe::dispatch_workspace_bytes(T, k, E);
  for (auto* buf : {&sorted_token, &sorted_slot, &position})
    if (!bench::ok_or_skip(state, buf->allocate(n))) return;
  if (!bench::ok_or_skip(state, counts.allocate(E)) || !bench::ok_or_skip(state, offsets.allocate(E + 1)) ||
      !bench::ok_or_skip(state, ws.allocate(ws_bytes > 0 ? ws_bytes : 1)))
    return;
  moe::DispatchOutputs out;
  out.expert_counts = counts.data();
  out.expert_offsets = offsets.data();
  out.sorted_token = sorted_token.data();
  out.sorted_slot = sorted_slot.data();
  out.slot_position = position.data();
  auto work = [&]() -> Status { return moe::dispatch(b.ids.data(), T, k, E, out, ws.data(), ws_bytes, b.s()); };
  if (!time_loop(state, b, work)) return;
  b.counters(state, dispatch_bytes(static_cast<double>(n), E), 0.0);
}

/// routed/ stopped after a stage (profiling by difference, see the file comment).
template <class M, moe::Stage Stop>
void BM_through(benchmark::State& state) {
  using G = typename M::Gate;
  state.SetLabel(model_label<M>() + (Stop == moe::Stage::dispatch ? " (through dispatch)" : " (through GEMM 1)"));
  MoeBench<M> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init()) || !bench::ok_or_skip(state, b.run_routed(Stop))) return;
  if (!time_loop(state, b, [&]() -> Status { return b.run_routed(Stop); })) return;
  const double T = b.T, H = M::kHidden, I = M::kInter, Is = M::kShared, n = T * G::kTopK, E = G::kExperts;
  if constexpr (Stop == moe::Stage::dispatch) {
    b.counters(state, dispatch_bytes(n, E), 0.0);
  } else {
    const double bytes =
        2.0 * T * H + 8.0 * n + 4.0 * b.touched * H * I + 2.0 * static_cast<double>(b.assignments) * I + 4.0 * H * Is + 2.0 * T * Is;
    b.counters(state, bytes, 4.0 * H * I * static_cast<double>(b.assignments) + 4.0 * H * Is * T);
  }
}

template <class M>
void BM_cublas_loop(benchmark::State& state) {
  state.SetLabel(model_label<M>() + " (per-expert cuBLAS loop)");
  MoeBench<M> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init())) return;
  CublasLoop<M> loop(b);
  std::string error;
  double rel_diff = 0.0;
  if (!bench::ok_or_skip(state, loop.init()) || !bench::ok_or_skip(state, loop.warm_up_and_compare(error, rel_diff))) return;
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  if (!time_loop(state, b, [&]() -> Status { return loop.run(); })) return;
  b.counters(state, b.bytes(false), b.flops(false));
  state.counters["max_rel_diff_vs_layer"] = rel_diff;
}

template <class M>
void register_model(bool stages, bool tile_sweep) {
  auto add = [](const char* kind, void (*fn)(benchmark::State&)) {
    auto* bm = benchmark::RegisterBenchmark((std::string(kind) + "/" + M::kName).c_str(), fn);
    bm->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
    for (const int t : {1, 8, 32, 128, 1024, 8192}) bm->Arg(t);
  };
  // A model's benchmarks run together (registration order), so its weights are allocated once.
  add("layer", BM_layer<M>);
  if (stages) {  // decode only: launch gaps matter where the kernels are short
    auto decode = [](const char* kind, void (*fn)(benchmark::State&)) {
      auto* bm = benchmark::RegisterBenchmark((std::string(kind) + "/" + M::kName).c_str(), fn);
      bm->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
      for (const int t : {1, 8, 32}) bm->Arg(t);
    };
    decode("layer_plain", BM_layer_plain<M>);
    decode("layer_graph", BM_layer_graph<M>);
  }
  add("routed", BM_routed<M>);
  auto quant = [](const char* codec, void (*fn)(benchmark::State&)) {
    auto* q = benchmark::RegisterBenchmark((std::string("quant/") + M::kName + "/" + codec).c_str(), fn);
    q->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
    for (const int t : {1, 8, 32, 4096}) q->Arg(t);
  };
  quant(deepshock::quant::Int8Channel::kName, BM_quant<M, deepshock::quant::Int8Channel>);
  quant(deepshock::quant::Int8ChannelA8::kName, BM_quant<M, deepshock::quant::Int8ChannelA8>);
  quant(Int4Codec::kName, BM_quant<M, Int4Codec>);
  quant(deepshock::quant::Mxfp4::kName, BM_quant<M, deepshock::quant::Mxfp4>);
  quant(deepshock::quant::Nvfp4::kName, BM_quant<M, deepshock::quant::Nvfp4>);
  quant(deepshock::quant::Fp8Block::kName, BM_quant<M, deepshock::quant::Fp8Block>);
  if constexpr (std::is_same_v<M, DeepSeekV3> || std::is_same_v<M, DeepSeekV2Lite>) {  // FP8 activations: V3's recipe
    auto* q = benchmark::RegisterBenchmark((std::string("quant/") + M::kName + "/" + deepshock::quant::Fp8BlockA8::kName).c_str(),
                                           BM_quant<M, deepshock::quant::Fp8BlockA8>);
    q->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
    for (const int t : {1, 8, 32, 4096, 8192}) q->Arg(t);
  }
  if (stages) add("router", BM_router<M>);
  if (stages) add("dispatch", BM_dispatch<M>);
  if (stages) add("through_dispatch", BM_through<M, moe::Stage::dispatch>);
  if (stages) add("through_gemm1", BM_through<M, moe::Stage::gemm1>);
  add("cublas_loop", BM_cublas_loop<M>);
  if (tile_sweep) {
    auto tiles = [](const char* name, void (*fn)(benchmark::State&)) {
      auto* bm = benchmark::RegisterBenchmark((std::string("tiles/") + M::kName + "/" + name).c_str(), fn);
      bm->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
      for (const int t : {1, 8, 32, 1024, 8192}) bm->Arg(t);
    };
    tiles(TilesDefault::kName, BM_tiles<M, TilesDefault>);
    tiles(TilesNarrowWide::kName, BM_tiles<M, TilesNarrowWide>);
    tiles(TilesDeepBig::kName, BM_tiles<M, TilesDeepBig>);
  }
  // Every model: the stream-K decode schedule against routed/ (the same tiles, one block each).
  auto* sk =
      benchmark::RegisterBenchmark((std::string("tiles/") + M::kName + "/" + TilesStreamK::kName).c_str(), BM_tiles<M, TilesStreamK>);
  sk->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
  for (const int t : {1, 8, 32}) sk->Arg(t);
}

/// quant/<model>/fp8_block128_a8/hopper_wgmma: FP8 experts and activations on Hopper's wgmma
/// prefill tiles (moe::HopperFp8GemmTuning); registered after every model, as hopper_wgmma.
template <class M>
void register_hopper_fp8() {
  using Q = deepshock::quant::Fp8BlockA8;
  auto* bm = benchmark::RegisterBenchmark((std::string("quant/") + M::kName + "/" + Q::kName + "/hopper_wgmma").c_str(),
                                          BM_quant<M, Q, moe::HopperFp8GemmTuning>);
  bm->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
  for (const int t : {1024, 4096, 8192}) bm->Arg(t);
}

/// tiles/<model>/hopper_wgmma: registered after every model, so that if the first wgmma runs on
/// a GPU fault, the rows already measured are kept (the console log is written as rows finish).
template <class M>
void register_hopper_tiles() {
  auto* bm = benchmark::RegisterBenchmark((std::string("tiles/") + M::kName + "/" + TilesHopper::kName).c_str(), BM_tiles<M, TilesHopper>);
  bm->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
  for (const int t : {1, 8, 32, 1024, 8192}) bm->Arg(t);
}

[[maybe_unused]] const bool kRegistered = [] {
  register_model<DeepSeekV2Lite>(/*stages=*/true, /*tile_sweep=*/true);
  register_model<Qwen3_30B_A3B>(false, true);
  register_model<Mixtral8x7B>(false, false);
  register_model<DeepSeekV3>(false, false);
  register_hopper_tiles<DeepSeekV2Lite>();
  register_hopper_tiles<Qwen3_30B_A3B>();
  register_hopper_fp8<DeepSeekV2Lite>();
  register_hopper_fp8<DeepSeekV3>();
  register_model<DeepSeekV2>(false, false);
  register_model<Qwen15MoE>(false, false);
  return true;
}();

}  // namespace

// GPU benchmarks: skip cleanly without a device; 0.05 s of GPU time per benchmark unless
// --benchmark_min_time says otherwise. The last model's weights are freed before main returns
// (not in a static destructor, which could run after the CUDA runtime has shut down).
int main(int argc, char** argv) {
  const int rc = deepshock::bench::bench_main(argc, argv, /*needs_device=*/true, /*default_min_time=*/"0.05");
  weight_cache().reset();
  quant_cache().reset();
  return rc;
}
