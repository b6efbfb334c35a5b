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
//   ep_step/<model>/ranks:1/T:n  ep::DeviceEp with one rank over the in-process transport (router,
//                            plan, scans, packs, the counts' host sync, the exchanges as device
//                            copies, Layer::run_slots, return, scatter, Layer::run_combine), and
//   ep_layer/<model>/T:n     Layer::run with the same batch-invariant router: ep_step over
//                            ep_layer is what the EP orchestration costs when no byte leaves the
//                            GPU (DeepSeek-V2-Lite, T in {1, 32, 1024})
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
// order) or the end of main. Without a GPU the binary prints one line and exits 0. The harness
// (weights, MoeBench) is shared with bench_lora.cu: support/moe_bench.cuh.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <cublas_v2.h>

#include "bench_util.hpp"
#include "deepshock/ep/device_ep.hpp"
#include "deepshock/ep/inprocess.hpp"
#include "moe_bench.cuh"  // the weights, MoeBench, model_label, time_loop

namespace {
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

/// Arg T: one rank of deepshock::ep::DeviceEp (EpStep) or Layer::run with the same router options.
template <class M, bool Ep>
void BM_ep_step(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  MoeBench<M> b(T);
  if (!bench::ok_or_skip(state, b.init())) return;
  using L = typename MoeBench<M>::LayerT;
  const deepshock::gate::RouterOptions options = b.layer.router().options();
  L layer(b.layer.dims(), b.layer.router().params(), deepshock::ep::batch_invariant(options));
  deepshock::ep::InProcessGroup group(1, std::chrono::milliseconds(60000), deepshock::ep::device_copy);
  auto tr = group.transport(0);
  deepshock::ep::DeviceEp<L, deepshock::ep::InProcessTransport> rank(tr, deepshock::ep::Placement::contiguous(L::kExperts, 1),
                                                                     b.layer.dims(), b.layer.router().params(), options);
  if (!bench::ok_or_skip(state, rank.status()) || !bench::ok_or_skip(state, layer.status())) return;
  const deepshock::moe::LayerInputs<deepshock::bf16> in{b.x.data(), T, 0, nullptr};
  deepshock::moe::LayerOutputs<deepshock::bf16> out;
  out.y = b.y.data();
  auto work = [&]() -> Status {
    if constexpr (Ep) return rank.run(in, b.w, out, b.s());
    else return layer.run(in, b.w, out, b.workspace.data(), b.workspace.size(), b.s());
  };
  for (int i = 0; i < 2; ++i)
    if (!bench::ok_or_skip(state, work())) return;
  if (!time_loop(state, b, work)) return;
  b.counters(state, b.bytes(true), b.flops(true));
  state.SetLabel(model_label<M>() + (Ep ? " (deepshock::ep::DeviceEp, 1 rank)" : " (Layer::run, batch-invariant router)"));
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
  for (auto* bm : {benchmark::RegisterBenchmark("ep_step/DeepSeek-V2-Lite/ranks:1", BM_ep_step<DeepSeekV2Lite, true>),
                   benchmark::RegisterBenchmark("ep_layer/DeepSeek-V2-Lite", BM_ep_step<DeepSeekV2Lite, false>)}) {
    bm->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
    for (const int t : {1, 32, 1024}) bm->Arg(t);
  }
  register_hopper_tiles<DeepSeekV2Lite>();
  register_hopper_tiles<Qwen3_30B_A3B>();
  register_hopper_fp8<DeepSeekV2Lite>();
  register_hopper_fp8<DeepSeekV3>();
  register_model<DeepSeekV2>(false, false);
  register_model<Qwen15MoE>(false, false);
  return true;
}();

}  // namespace

int main(int argc, char** argv) { return moe_bench_main(argc, argv); }
