// bench/bench_router.cu — the token-choice router on published model shapes (deepshock/models/presets.hpp)
// (nvcc, Google Benchmark, CUDA-event manual time, JSON-friendly counters).
//
// For each model (hidden H, E routed experts, top-k, its policy) and T in {1, 16, 128, 1024, 8192}
// tokens, bf16 inputs:
//   fused/<model>/T:n             gate::Router<Policy>::run: x . W_g^T and the routing in one kernel
//                                 (tensor cores; T <= 64: a projection kernel, then the routing
//                                 kernel); the label names the path taken
//   unfused_baseline/<model>/T:n  cublasGemmEx (bf16 in, fp32 out and compute) writes logits [T, E],
//                                 then plain_route_kernel (below) routes them; both timed together
//   router_only/<model>/T:n       gate::Router<Policy>::run_logits on precomputed fp32 logits [T, E]
// Every timed region also zeroes the expert counts (Router does that inside run/run_logits; the
// baseline does it with its own memset), so the three do the same work apart from the projection.
//
// Bytes (compulsory traffic: every input read once, every output written once; int32 ids, fp32
// weights and counts):
//   fused, unfused_baseline   2TH (x) + 2EH (W_g) + 8Tk (ids, weights) + 4E (counts) [+ 4E bias, V3]
//   router_only               4TE (logits) + 8Tk + 4E [+ 4E bias, V3]
// The baseline's logits round trip (4TE written by cuBLAS, 4TE read back) is deliberately not
// counted: the bytes are what the operation must move, so the GB/s of fused and unfused_baseline
// compare directly (equal bytes: the ratio of their GB/s is the ratio of their times).
// FLOPs (fused, unfused_baseline): 2TEH, the projection only (routing arithmetic is left out).
// Counters (bench_util.hpp, set_roofline_counters): bytes_per_second and pct_of_bw_roofline
// against the H200's 4.8 TB/s HBM; flop_per_second and pct_of_flop_roofline against 989 TFLOP/s
// dense bf16. The projection does E FLOP per byte of x (2TEH FLOP over ~2TH bytes at large T):
// below the H200's ridge (989 / 4.8 = ~206 FLOP/B) for E <= 128, so those shapes are memory- or
// latency-bound; DeepSeek-V3 (E = 256) is above it, so at large T its time is bounded by tensor
// throughput: even 100% of the dense peak gives only 989e12 / 256 B/s = 3.9 TB/s (80% of HBM),
// so pct_of_flop_roofline is the meaningful counter there. Both peaks are datasheet leads, not
// measurements.
//
// speedup_vs_unfused (fused rows only) = (time of the unfused baseline) / (time of the fused
// router), both measured in the same benchmark, interleaved: every iteration runs the fused router
// between the reported events and then the baseline between a second pair of events, each after
// its own untimed L2 flush, on the same stream, with the same inputs. The baseline's time never
// enters the fused row's reported time. > 1 means the fused router is faster.
// speedup_vs_cublas_run_logits (fused rows only), measured the same way (a third pair of events
// per iteration): the baseline is cublasGemmEx followed by the library's own routing kernel
// (Router::run_logits) on its logits, so the ratio is the gain of fusion alone, apart from how
// the routing itself is computed.
//
// Timing: as bench_primitives.cu: CUDA events around the work of one iteration after an untimed
// write of twice the L2 size (cold L2: W_g and x come from HBM, as in a real layer), which also
// keeps launch latency outside the events. Setup (allocation, seeded fills) is outside the timed
// loop; each path is run once to warm up (cuBLAS picks and loads its kernel there) with outputs
// poisoned beforehand, and its results are checked before timing, so a wrong kernel is reported as
// an error and not as a speed: every token's ids valid and distinct, weights finite, the counts
// equal to the histogram of the ids; and for up to 32 sampled tokens, ids and weights against the
// double-precision host reference (gate/reference.hpp) computed from the same bf16 inputs,
// wherever the reference's selection margin is clear of fp32 rounding.
//
// Inputs: x ~ U[-1, 1), W_g ~ U[-a, a) with a = 6/sqrt(H) (logits ~ N(0, 2^2), as a trained
// gate's are O(1)), bias ~ U[-0.1, 0.1), router_only logits ~ U[-4, 4): seeded, identical every run.
//
// Without a GPU the binary prints one line and exits 0. The file also compiles in a simulator
// build, where a kernel with cublasGemmEx's exact argument contract stands in for cuBLAS: that
// checks the routing, the GEMM transposes and the checks themselves on a machine without a GPU
// (its times mean nothing; no CMake target):
//   g++ -x c++ -std=c++20 -O2 -DDEEPSHOCK_SIM=1 -Iinclude -Ibench/support bench/bench_router.cu
//       -o bench_router_sim -lbenchmark -lboost_context
//   ./bench_router_sim --benchmark_filter='T:(1|16)/'
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/philox.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/reference.hpp"
#include "deepshock/gate/router.hpp"
#include "deepshock/models/presets.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/warp.hpp"

#if !DEEPSHOCK_SIM
#include <cublas_v2.h>
#endif

namespace {
namespace ds = deepshock;
namespace gate = deepshock::gate;
namespace rt = deepshock::rt;
namespace bench = deepshock::bench;
namespace models = deepshock::models;
using ds::bf16;
using ds::Status;

// ---- model shapes (deepshock/models/presets.hpp): one Router instantiation each, bf16 only ---------
using models::DeepSeekV2;
using models::DeepSeekV2Lite;
using models::DeepSeekV3;
using models::Mixtral8x7B;
using models::Qwen15MoE;
using models::Qwen3_30B_A3B;

std::string scale_text(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
  return buf;
}
template <class M>
std::string model_label() {
  using P = typename M::Gate;
  return std::string(M::kName) + ": " + P::kName + " E=" + std::to_string(P::kExperts) + " k=" + std::to_string(P::kTopK) +
         (P::kGroups > 1 ? " groups=" + std::to_string(P::kGroups) + "/" + std::to_string(P::kKeepGroups) : "") +
         " H=" + std::to_string(M::kHidden) + (M::kRenormalize ? " renorm" : "") +
         (M::kScale != 1.0f ? " scale=" + scale_text(M::kScale) : "");
}

// ---- kernels (plain CUDA: launched through deepshock::launch, library warp primitives) ----------
constexpr std::uint32_t kSeedX = 101, kSeedW = 202, kSeedBias = 303, kSeedLogits = 404;

/// Element i of a seeded uniform sequence in [-1, 1).
DEEPSHOCK_HOST_DEVICE float uniform_pm1(unsigned long long i, std::uint32_t seed) {
  const ds::Philox4x32::Counter c{{static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i >> 32), 0u, 0u}};
  const ds::Philox4x32::Key k{{seed, 0x6A7Eu}};
  return 2.0f * ds::u32_to_unit_float(ds::Philox4x32::generate(c, k)[0]) - 1.0f;
}

/// x[i] = T(scale * uniform_pm1(i, seed)), T = float or bf16.
template <class T>
DEEPSHOCK_KERNEL void fill_uniform_kernel(T* x, long long n, std::uint32_t seed, float scale) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] = static_cast<T>(scale * uniform_pm1(static_cast<unsigned long long>(i), seed));
}

inline constexpr int kPlainWarps = 8;  ///< tokens (warps) per block of plain_route_kernel

/// The baseline's routing: one warp per token, lane l holding experts l, l+32, ...; the policy's
/// scoring (softmax over E with max subtraction, or sigmoid), + bias for the selection key,
/// group-limited selection (group score = max key, or the sum of the two largest found by two
/// warp arg-max rounds; the best `keep` groups stay), then k rounds of a warp arg-max; weights =
/// scores of the chosen, renormalised (+ eps) if asked, x scale; counts by atomicAdd. No token
/// mask, expert-parallel range or non-finite handling: the benchmark's inputs need none.
template <class Policy>
DEEPSHOCK_KERNEL void plain_route_kernel(const float* logits, const float* bias, int tokens, gate::PolicyParams p, float scale, int* ids,
                                         float* weights, int* counts) {
  constexpr int E = Policy::kExperts, K = Policy::kTopK, N = (E + 31) / 32;
  using Ranked = ds::warp::Ranked<float>;
  constexpr Ranked kNone{std::numeric_limits<float>::lowest(), INT_MAX};  // loses to every expert
  const int t = static_cast<int>(blockIdx.x) * kPlainWarps + static_cast<int>(threadIdx.x) / 32;
  if (t >= tokens) return;  // whole warps leave together
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const float* row = logits + static_cast<long long>(t) * E;
  float s[N], key[N];
  bool live[N];
  DEEPSHOCK_UNROLL
  for (int j = 0; j < N; ++j) {
    const int e = lane + 32 * j;
    live[j] = e < E;
    s[j] = live[j] ? row[e] : 0.0f;
  }
  if constexpr (Policy::kScoring == gate::Scoring::softmax) {
    float m = -INFINITY;
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j)
      if (live[j] && s[j] > m) m = s[j];
    m = ds::warp::reduce_max(m);
    float sum = 0.0f;
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j) {
      s[j] = live[j] ? gate::math::exp(s[j] - m) : 0.0f;
      sum += s[j];
    }
    const float inv = 1.0f / ds::warp::reduce_sum(sum);
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j) s[j] *= inv;
  } else {
    static_assert(Policy::kScoring == gate::Scoring::sigmoid, "plain_route_kernel: softmax or sigmoid scoring");
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j) s[j] = gate::sigmoid(s[j]);
  }
  DEEPSHOCK_UNROLL
  for (int j = 0; j < N; ++j) key[j] = Policy::kUsesBias && live[j] ? s[j] + bias[lane + 32 * j] : s[j];
  if constexpr (Policy::kGroups > 1) {
    constexpr int G = Policy::kGroups, GS = Policy::kGroupSize;
    float gscore[G];
    DEEPSHOCK_UNROLL
    for (int g = 0; g < G; ++g) {
      Ranked best = kNone;
      DEEPSHOCK_UNROLL
      for (int j = 0; j < N; ++j) {
        const Ranked c{key[j], lane + 32 * j};
        if (live[j] && c.index / GS == g && ds::warp::ranks_before(c, best)) best = c;
      }
      best = ds::warp::argmax(best);
      gscore[g] = best.score;
      if constexpr (Policy::kGroupScore == gate::GroupScore::top2_sum) {
        Ranked second = kNone;
        DEEPSHOCK_UNROLL
        for (int j = 0; j < N; ++j) {
          const Ranked c{key[j], lane + 32 * j};
          if (live[j] && c.index / GS == g && c.index != best.index && ds::warp::ranks_before(c, second)) second = c;
        }
        second = ds::warp::argmax(second);
        if (second.index != INT_MAX) gscore[g] += second.score;
      }
    }
    unsigned long long kept = 0;  // every lane holds the same scores, so picks the same groups
    for (int r = 0; r < Policy::kKeepGroups; ++r) {
      int pick = -1;
      float best = 0.0f;  // gscore[pick] without a dynamic index (which would put gscore in local memory)
      DEEPSHOCK_UNROLL
      for (int g = 0; g < G; ++g)
        if (!(kept >> g & 1ull) && (pick < 0 || gscore[g] > best)) {
          pick = g;
          best = gscore[g];
        }
      kept |= 1ull << pick;
    }
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j)
      if (live[j] && !(kept >> ((lane + 32 * j) / GS) & 1ull)) live[j] = false;
  }
  int my_id = -1;
  float my_w = 0.0f, wsum = 0.0f;
  DEEPSHOCK_UNROLL
  for (int r = 0; r < K; ++r) {
    Ranked best = kNone;
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j) {
      const Ranked c{key[j], lane + 32 * j};
      if (live[j] && ds::warp::ranks_before(c, best)) best = c;
    }
    const Ranked win = ds::warp::argmax(best);
    float mine = 0.0f;  // the winner's score, from the lane that holds it
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j)
      if (lane + 32 * j == win.index) {
        mine = s[j];
        live[j] = false;
      }
    const float w = ds::warp::shfl(mine, win.index % 32);
    wsum += w;
    if (lane == r) {
      my_id = win.index;
      my_w = w;
    }
  }
  if (lane < K) {
    const float w = p.renormalize ? my_w / (wsum + p.renorm_eps) : my_w;
    ids[static_cast<long long>(t) * K + lane] = my_id;
    weights[static_cast<long long>(t) * K + lane] = w * scale;
    atomicAdd(&counts[my_id], 1);
  }
}

// ---- the gate GEMM of the baseline ---------------------------------------------------------------
/// cublasGemmEx's shape arguments: column-major C[m, n] = op(A)[m, k] . op(B)[k, n].
struct GemmArgs {
  bool trans_a, trans_b;
  int m, n, k, lda, ldb, ldc;
};

/// logits[T, E] = x[T, H] . W_g[E, H]^T, all row-major, for column-major cuBLAS. A row-major
/// [R, C] array is, read column-major, the [C, R] array (its transpose) with leading dimension C:
///   x      row-major [T, H]  =  column-major x^T      [H, T], ld H
///   W_g    row-major [E, H]  =  column-major W_g^T    [H, E], ld H
///   logits row-major [T, E]  =  column-major logits^T [E, T], ld E
/// and logits^T = W_g . x^T = (W_g^T)^T . (x^T). So A = W_g's buffer with op T (lda H), B = x's
/// buffer with op N (ldb H), C = the logits buffer (ldc E), m = E, n = T, k = H: the usual "TN"
/// GEMM, with no copy or transpose of any array.
GemmArgs gate_gemm_args(int T, int H, int E) { return {/*trans_a=*/true, /*trans_b=*/false, E, T, H, H, H, E}; }

#if DEEPSHOCK_SIM
/// Simulator stand-in for cublasGemmEx (bf16 A and B, fp32 C and accumulation, alpha 1, beta 0)
/// with the same argument contract, so the arguments above are checked by the routing checks.
DEEPSHOCK_KERNEL void gemm_ex_emulation_kernel(GemmArgs g, const bf16* A, const bf16* B, float* C) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<long long>(g.m) * g.n) return;
  const long long i = idx % g.m, j = idx / g.m;
  float acc = 0.0f;
  for (long long q = 0; q < g.k; ++q) {
    const float a = (g.trans_a ? A[q + i * g.lda] : A[i + q * g.lda]).to_float();
    const float b = (g.trans_b ? B[j + q * g.ldb] : B[q + j * g.ldb]).to_float();
    acc = gate::math::fma(a, b, acc);
  }
  C[i + j * g.ldc] = acc;
}
using blas_handle_t = int;  // no cuBLAS in the simulator
Status bind_blas(blas_handle_t& h, rt::stream_t) {
  h = 0;
  return Status::success();
}
Status gate_gemm(blas_handle_t, rt::stream_t s, const bf16* x, const bf16* w, float* logits, int T, int H, int E) {
  const GemmArgs g = gate_gemm_args(T, H, E);
  const long long n = static_cast<long long>(g.m) * g.n;
  return ds::launch(gemm_ex_emulation_kernel, {dim3(static_cast<unsigned>((n + 127) / 128)), dim3(128), 0, s}, g, w, x, logits);
}
#else
using blas_handle_t = cublasHandle_t;

Status from_cublas(cublasStatus_t st, const char* call) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::success();
  return Status::runtime_error(std::string(call) + ": " + cublasGetStatusName(st) + " (" + cublasGetStatusString(st) + ")");
}

/// The process's cuBLAS handle, created on first use (only benchmarks call this, and they run only
/// once bench_main has found a device) and deliberately never destroyed: a static destructor could
/// run after the CUDA runtime has shut down.
Status blas_handle(cublasHandle_t& out) {
  static cublasHandle_t handle = nullptr;
  static const Status created = from_cublas(cublasCreate(&handle), "cublasCreate");
  out = handle;
  return created;
}

/// The shared handle, bound to this benchmark's stream (cuBLAS then also uses its default
/// workspace for that stream).
Status bind_blas(blas_handle_t& h, rt::stream_t s) {
  DEEPSHOCK_RETURN_IF_ERROR(blas_handle(h));
  return from_cublas(cublasSetStream(h, s), "cublasSetStream");
}

/// logits = x . W_g^T through cublasGemmEx (arguments: gate_gemm_args). CUBLAS_COMPUTE_32F with
/// bf16 inputs runs on the tensor cores with fp32 accumulation, as the fused router's does.
Status gate_gemm(blas_handle_t h, rt::stream_t, const bf16* x, const bf16* w, float* logits, int T, int H, int E) {
  static_assert(sizeof(bf16) == 2, "deepshock::bf16 must have __nv_bfloat16's layout");
  const GemmArgs g = gate_gemm_args(T, H, E);
  const float alpha = 1.0f, beta = 0.0f;
  return from_cublas(cublasGemmEx(h, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.m, g.n, g.k, &alpha, w,
                                  CUDA_R_16BF, g.lda, x, CUDA_R_16BF, g.ldb, &beta, logits, CUDA_R_32F, g.ldc, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT),
                     "cublasGemmEx");
}
#endif

// ---- harness ---------------------------------------------------------------------------------------
/// Times `work` between its own pair of events after an untimed L2 flush, like
/// bench::timed_gpu_iteration, but adds the seconds to `total` instead of reporting them to
/// Google Benchmark (for a second measurement inside one benchmark).
class SideTimer {
 public:
  Status init() {
    DEEPSHOCK_RETURN_IF_ERROR(start_.create());
    return stop_.create();
  }
  template <class Work>
  Status measure(bench::L2Flusher& l2, rt::stream_t s, Work& work) {
    DEEPSHOCK_RETURN_IF_ERROR(l2.flush(s));
    DEEPSHOCK_RETURN_IF_ERROR(start_.record(s));
    DEEPSHOCK_RETURN_IF_ERROR(work());
    DEEPSHOCK_RETURN_IF_ERROR(stop_.record(s));
    DEEPSHOCK_RETURN_IF_ERROR(stop_.synchronize());
    float ms = 0.0f;
    DEEPSHOCK_RETURN_IF_ERROR(rt::Event::elapsed_ms(start_, stop_, ms));
    total_ += static_cast<double>(ms) * 1e-3;
    return Status::success();
  }
  double total_seconds() const noexcept { return total_; }

 private:
  rt::Event start_, stop_;
  double total_ = 0.0;
};

template <class T>
Status fill(rt::DeviceBuffer<T>& buf, std::uint32_t seed, float scale, rt::stream_t s) {
  return ds::launch(fill_uniform_kernel<T>, {dim3(1024), dim3(256), 0, s}, buf.data(), static_cast<long long>(buf.size()), seed, scale);
}

/// Copies rows `rows` of a row-major device array of `width` columns, packed, into `dst`; waits.
template <class T>
Status download_rows(const T* src, int width, const std::vector<int>& rows, std::vector<T>& dst, rt::stream_t s) {
  const std::size_t w = static_cast<std::size_t>(width);
  dst.resize(rows.size() * w);
  for (std::size_t i = 0; i < rows.size(); ++i)
    DEEPSHOCK_RETURN_IF_ERROR(
        rt::memcpy_async(dst.data() + i * w, src + static_cast<std::size_t>(rows[i]) * w, sizeof(T) * w, rt::Copy::device_to_host, s));
  return rt::stream_synchronize(s);
}

/// Tokens whose routing is compared with the host reference: up to 32, first and last included.
std::vector<int> sampled_tokens(int T) {
  const int n = std::min(T, 32);
  std::vector<int> t(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = n == 1 ? 0 : static_cast<int>(static_cast<long long>(i) * (T - 1) / (n - 1));
  return t;
}

/// Ids are compared with the reference where its relative selection margin (the smallest relative
/// gap between consecutive chosen keys, the last chosen and the first unchosen key, and the kept
/// and dropped group scores) exceeds this, so a token whose choice float rounding could flip is
/// never held against a kernel. Projection: fp32 logits of a 7168-term bf16 dot product differ
/// from double by up to ~2e-5 (sequential fp32 FMAs on these inputs; a relative key gap of 2e-4
/// is a logit gap of >= 2e-4 under softmax, and more under sigmoid). Given logits: both sides
/// start from the same fp32 values, so only fp32 softmax/sigmoid rounding (~1e-7) remains.
/// With these seeded inputs every (model, T) run checks at least 13 of 16 or 24 of 32 sampled
/// tokens, except DeepSeek-V3's router_only at T = 1, whose one token is a near tie (0 of 1).
constexpr double kDecisiveMarginProjection = 2e-4, kDecisiveMarginLogits = 1e-4;
/// Weights: |w - w_ref| <= kWeightAtol + kWeightRtol |w_ref| (fp32 logits, fp32 softmax/sigmoid).
constexpr double kWeightAtol = 1e-5, kWeightRtol = 1e-3;

/// Everything one benchmark run of model M at T tokens needs: stream, timers, inputs, outputs.
template <class M>
struct RouterBench {
  using Policy = typename M::Gate;
  static constexpr int E = Policy::kExperts, K = Policy::kTopK, H = M::kHidden;

  explicit RouterBench(int tokens) : T(tokens), router(models::params<M>(), models::options<M>()) {}

  int T;
  gate::Router<Policy> router;
  rt::Stream stream;
  bench::GpuTimer timer;
  bench::L2Flusher l2;
  rt::DeviceBuffer<bf16> x, w;
  rt::DeviceBuffer<float> bias, logits;
  rt::DeviceBuffer<int> ids, counts;
  rt::DeviceBuffer<float> weights;
  rt::DeviceBuffer<unsigned char> workspace;
  blas_handle_t blas{};
  std::vector<double> ref_logits;  // [sampled tokens, E], double, from the same inputs
  std::vector<float> ref_bias;     // [E] for V3, else empty
  double decisive_margin = kDecisiveMarginLogits;

  rt::stream_t s() const { return stream.get(); }
  const float* bias_ptr() const { return Policy::kUsesBias ? bias.data() : nullptr; }

  /// Stream, timer, flusher, outputs, bias; with_projection: x, W_g and the baseline's logits
  /// buffer; else the router_only logits. Then the reference logits of the sampled tokens.
  Status init(bool with_projection) {
    DEEPSHOCK_RETURN_IF_ERROR(stream.create());
    DEEPSHOCK_RETURN_IF_ERROR(timer.init());
    DEEPSHOCK_RETURN_IF_ERROR(l2.init());
    const std::size_t out_n = static_cast<std::size_t>(T) * K;
    DEEPSHOCK_RETURN_IF_ERROR(ids.allocate(out_n));
    DEEPSHOCK_RETURN_IF_ERROR(weights.allocate(out_n));
    DEEPSHOCK_RETURN_IF_ERROR(counts.allocate(E));
    DEEPSHOCK_RETURN_IF_ERROR(logits.allocate(static_cast<std::size_t>(T) * E));
    if (const std::size_t ws = gate::Router<Policy>::workspace_bytes(T); ws > 0) DEEPSHOCK_RETURN_IF_ERROR(workspace.allocate(ws));
    if (Policy::kUsesBias) {
      DEEPSHOCK_RETURN_IF_ERROR(bias.allocate(E));
      DEEPSHOCK_RETURN_IF_ERROR(fill(bias, kSeedBias, 0.1f, s()));
      ref_bias.resize(E);
      DEEPSHOCK_RETURN_IF_ERROR(bias.copy_to_host(ref_bias.data(), E, s()));
    }
    const std::vector<int> sample = sampled_tokens(T);
    const int n = static_cast<int>(sample.size());
    decisive_margin = with_projection ? kDecisiveMarginProjection : kDecisiveMarginLogits;
    if (with_projection) {
      DEEPSHOCK_RETURN_IF_ERROR(x.allocate(static_cast<std::size_t>(T) * H));
      DEEPSHOCK_RETURN_IF_ERROR(w.allocate(static_cast<std::size_t>(E) * H));
      DEEPSHOCK_RETURN_IF_ERROR(fill(x, kSeedX, 1.0f, s()));
      DEEPSHOCK_RETURN_IF_ERROR(fill(w, kSeedW, 6.0f / std::sqrt(static_cast<float>(H)), s()));
      DEEPSHOCK_RETURN_IF_ERROR(bind_blas(blas, s()));
      std::vector<bf16> hx, hw(static_cast<std::size_t>(E) * H);
      DEEPSHOCK_RETURN_IF_ERROR(w.copy_to_host(hw.data(), hw.size(), s()));
      DEEPSHOCK_RETURN_IF_ERROR(download_rows(x.data(), H, sample, hx, s()));
      ref_logits = gate::reference::gate_logits(hx.data(), hw.data(), n, H, E);
    } else {
      DEEPSHOCK_RETURN_IF_ERROR(fill(logits, kSeedLogits, 4.0f, s()));
      std::vector<float> hl;
      DEEPSHOCK_RETURN_IF_ERROR(download_rows(logits.data(), E, sample, hl, s()));
      ref_logits.assign(hl.begin(), hl.end());
    }
    return stream.synchronize();
  }

  // The timed work of each benchmark (launches only; no host synchronisation).
  Status fused() const {
    gate::GateInputs<bf16> in;
    in.x = x.data();
    in.w_gate = w.data();
    in.tokens = T;
    in.hidden = H;
    in.bias = bias_ptr();
    in.bias_size = Policy::kUsesBias ? E : 0;
    return router.run(in, outputs(), workspace.data(), workspace.size(), s());
  }
  /// The kernel path `fused()` takes, for the label.
  std::string fused_path() const {
    if (T <= gate::detail::kSplitMaxTokens) return "decode path: projection kernel + routing kernel";
    gate::GateInputs<bf16> in;
    in.x = x.data();
    in.w_gate = w.data();
    in.tokens = T;
    in.hidden = H;
    return gate::Router<Policy>::uses_tensor_cores(in) ? "fused, tensor cores" : "fused, FMA";
  }
  Status router_only() const {
    gate::LogitInputs in;
    in.logits = logits.data();
    in.tokens = T;
    in.bias = bias_ptr();
    in.bias_size = Policy::kUsesBias ? E : 0;
    return router.run_logits(in, outputs(), workspace.data(), workspace.size(), s());
  }
  Status unfused() const {
    DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(counts.data(), 0, sizeof(int) * E, s()));
    DEEPSHOCK_RETURN_IF_ERROR(gate_gemm(blas, s(), x.data(), w.data(), logits.data(), T, H, E));
    const dim3 grid(static_cast<unsigned>((T + kPlainWarps - 1) / kPlainWarps));
    return ds::launch(plain_route_kernel<Policy>, {grid, dim3(32 * kPlainWarps), 0, s()}, logits.data(), bias_ptr(), T, router.params(),
                      M::kScale, ids.data(), weights.data(), counts.data());
  }

  /// cublasGemmEx, then the library's routing kernel on its logits (run_logits zeroes the counts).
  Status unfused_library() const {
    DEEPSHOCK_RETURN_IF_ERROR(gate_gemm(blas, s(), x.data(), w.data(), logits.data(), T, H, E));
    return router_only();
  }

  gate::RoutingOutputs outputs() const {
    gate::RoutingOutputs o;
    o.topk_ids = ids.data();
    o.topk_weights = weights.data();
    o.expert_counts = counts.data();
    return o;
  }

  /// Poisons the outputs, runs `work` once (the warm-up) and checks what it wrote; `error`
  /// receives a description of the first problem, empty when all is well.
  template <class Work>
  Status warm_up_and_check(Work& work, std::string& error) {
    DEEPSHOCK_RETURN_IF_ERROR(ids.fill_bytes(0xFF, s()));
    DEEPSHOCK_RETURN_IF_ERROR(weights.fill_bytes(0xFF, s()));  // NaN
    DEEPSHOCK_RETURN_IF_ERROR(counts.fill_bytes(0xFF, s()));
    DEEPSHOCK_RETURN_IF_ERROR(work());
    std::vector<int> h_ids(ids.size()), h_counts(E);
    std::vector<float> h_w(weights.size());
    DEEPSHOCK_RETURN_IF_ERROR(ids.copy_to_host(h_ids.data(), h_ids.size(), s()));
    DEEPSHOCK_RETURN_IF_ERROR(weights.copy_to_host(h_w.data(), h_w.size(), s()));
    DEEPSHOCK_RETURN_IF_ERROR(counts.copy_to_host(h_counts.data(), h_counts.size(), s()));
    DEEPSHOCK_RETURN_IF_ERROR(stream.synchronize());
    error = check(h_ids, h_w, h_counts);
    return Status::success();
  }

  std::string check(const std::vector<int>& h_ids, const std::vector<float>& h_w, const std::vector<int>& h_counts) const {
    auto at = [](int t, int r) { return "token " + std::to_string(t) + " slot " + std::to_string(r) + ": "; };
    // Every token: k distinct valid ids, finite non-negative weights; counts = histogram of ids.
    std::vector<int> hist(E, 0);
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < K; ++r) {
        const std::size_t i = static_cast<std::size_t>(t) * K + r;
        const int id = h_ids[i];
        if (id < 0 || id >= E) return at(t, r) + "id " + std::to_string(id) + " is not an expert";
        for (int q = 0; q < r; ++q)
          if (h_ids[static_cast<std::size_t>(t) * K + q] == id) return at(t, r) + "expert " + std::to_string(id) + " chosen twice";
        if (!(std::isfinite(h_w[i]) && h_w[i] >= 0.0f)) return at(t, r) + "weight " + std::to_string(h_w[i]);
        ++hist[static_cast<std::size_t>(id)];
      }
    for (std::size_t e = 0; e < hist.size(); ++e)
      if (h_counts[e] != hist[e])
        return "count of expert " + std::to_string(e) + " is " + std::to_string(h_counts[e]) + ", its ids number " +
               std::to_string(hist[e]);
    // Sampled tokens against the double reference.
    const std::vector<int> sample = sampled_tokens(T);
    const int n = static_cast<int>(sample.size());
    const gate::reference::Routing ref =
        gate::reference::route<Policy>(ref_logits, n, nullptr, Policy::kUsesBias ? ref_bias.data() : nullptr, router.params(),
                                       router.options());
    int decisive = 0;
    for (int i = 0; i < n; ++i) {
      if (!(ref.margin[static_cast<std::size_t>(i)] > decisive_margin)) continue;
      ++decisive;
      for (int r = 0; r < K; ++r) {
        const std::size_t gi = static_cast<std::size_t>(sample[i]) * K + r, ri = static_cast<std::size_t>(i) * K + r;
        if (h_ids[gi] != ref.ids[ri])
          return at(sample[i], r) + "id " + std::to_string(h_ids[gi]) + ", reference " + std::to_string(ref.ids[ri]);
        const double err = std::abs(double(h_w[gi]) - ref.weights[ri]);
        if (!(err <= kWeightAtol + kWeightRtol * std::abs(ref.weights[ri])))
          return at(sample[i], r) + "weight " + std::to_string(h_w[gi]) + ", reference " + std::to_string(ref.weights[ri]);
      }
    }
    if (decisive == 0 && n > 1)
      return "none of the " + std::to_string(n) + " sampled tokens has a clear margin: nothing compared with the reference";
    return "";
  }
};

/// Marks the benchmark failed when the warm-up's results are wrong; true when they are right.
template <class M, class Work>
bool warm_up_checked(benchmark::State& state, RouterBench<M>& b, Work& work, const char* what) {
  std::string error;
  if (!bench::ok_or_skip(state, b.warm_up_and_check(work, error))) return false;
  if (error.empty()) return true;
  state.SkipWithError((std::string(what) + " gives a wrong routing: " + error).c_str());
  return false;
}

template <class M>
double projection_bytes(int T) {
  using P = typename M::Gate;
  return 2.0 * T * M::kHidden + 2.0 * P::kExperts * M::kHidden + 8.0 * T * P::kTopK + 4.0 * P::kExperts +
         (P::kUsesBias ? 4.0 * P::kExperts : 0.0);
}
template <class M>
double projection_flops(int T) {
  return 2.0 * T * M::Gate::kExperts * M::kHidden;
}

// ---- benchmarks ----------------------------------------------------------------------------------
template <class M>
void BM_fused(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  state.SetLabel(model_label<M>());
  RouterBench<M> b(T);
  SideTimer baseline_timer, library_timer;
  if (!bench::ok_or_skip(state, b.init(/*with_projection=*/true)) || !bench::ok_or_skip(state, baseline_timer.init()) ||
      !bench::ok_or_skip(state, library_timer.init()))
    return;
  state.SetLabel(model_label<M>() + " [" + b.fused_path() + "]");
  auto fused = [&]() -> Status { return b.fused(); };
  auto unfused = [&]() -> Status { return b.unfused(); };
  auto unfused_library = [&]() -> Status { return b.unfused_library(); };
  if (!warm_up_checked(state, b, unfused, "the unfused baseline") || !warm_up_checked(state, b, unfused_library, "cuBLAS + run_logits") ||
      !warm_up_checked(state, b, fused, "the fused router"))
    return;
  for (auto _ : state) {
    if (!bench::timed_gpu_iteration(state, b.timer, b.l2, b.s(), fused)) return;
    // Neither baseline enters the reported time.
    if (!bench::ok_or_skip(state, baseline_timer.measure(b.l2, b.s(), unfused))) return;
    if (!bench::ok_or_skip(state, library_timer.measure(b.l2, b.s(), unfused_library))) return;
  }
  bench::set_roofline_counters(state, projection_bytes<M>(T), projection_flops<M>(T), bench::kH200HbmBytesPerSecond,
                               bench::kH200DenseBf16FlopPerSecond, b.timer.total_seconds());
  if (b.timer.total_seconds() > 0.0) {
    state.counters["speedup_vs_unfused"] = baseline_timer.total_seconds() / b.timer.total_seconds();
    state.counters["speedup_vs_cublas_run_logits"] = library_timer.total_seconds() / b.timer.total_seconds();
  }
}

template <class M>
void BM_unfused_baseline(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  state.SetLabel(model_label<M>());
  RouterBench<M> b(T);
  if (!bench::ok_or_skip(state, b.init(/*with_projection=*/true))) return;
  auto unfused = [&]() -> Status { return b.unfused(); };
  if (!warm_up_checked(state, b, unfused, "the unfused baseline")) return;
  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, b.timer, b.l2, b.s(), unfused)) return;
  bench::set_roofline_counters(state, projection_bytes<M>(T), projection_flops<M>(T), bench::kH200HbmBytesPerSecond,
                               bench::kH200DenseBf16FlopPerSecond, b.timer.total_seconds());
}

template <class M>
void BM_router_only(benchmark::State& state) {
  using P = typename M::Gate;
  const int T = static_cast<int>(state.range(0));
  state.SetLabel(model_label<M>());
  RouterBench<M> b(T);
  if (!bench::ok_or_skip(state, b.init(/*with_projection=*/false))) return;
  auto work = [&]() -> Status { return b.router_only(); };
  if (!warm_up_checked(state, b, work, "run_logits")) return;
  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, b.timer, b.l2, b.s(), work)) return;
  const double bytes = 4.0 * T * P::kExperts + 8.0 * T * P::kTopK + 4.0 * P::kExperts + (P::kUsesBias ? 4.0 * P::kExperts : 0.0);
  bench::set_roofline_counters(state, bytes, 0.0, bench::kH200HbmBytesPerSecond, bench::kH200DenseBf16FlopPerSecond,
                               b.timer.total_seconds());
}

template <class M>
void register_model() {
  auto add = [](const char* kind, void (*fn)(benchmark::State&)) {
    benchmark::RegisterBenchmark((std::string(kind) + "/" + M::kName).c_str(), fn)
        ->ArgName("T")
        ->Arg(1)
        ->Arg(16)
        ->Arg(128)
        ->Arg(1024)
        ->Arg(8192)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  };
  add("fused", BM_fused<M>);
  add("unfused_baseline", BM_unfused_baseline<M>);
  add("router_only", BM_router_only<M>);
}

[[maybe_unused]] const bool kRegistered = [] {
  register_model<Mixtral8x7B>();
  register_model<DeepSeekV2Lite>();
  register_model<DeepSeekV2>();
  register_model<DeepSeekV3>();
  register_model<Qwen3_30B_A3B>();
  register_model<Qwen15MoE>();
  return true;
}();

}  // namespace

// GPU benchmarks: skip cleanly without a device; 0.05 s of GPU time per benchmark unless
// --benchmark_min_time says otherwise (each iteration also pays an untimed L2 flush, and the
// fused rows an untimed run of the baseline).
DEEPSHOCK_BENCH_MAIN(/*needs_device=*/true, /*default_min_time=*/"0.05")
