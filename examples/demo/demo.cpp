// deepshock demo: one whole Mixture-of-Experts layer, end to end.
//
// For a real model's shape (DeepSeek-V2-Lite by default; --preset picks another) the demo makes
// random bf16 tokens and weights from a seed, runs the layer — router (x·W_gᵀ and the model's
// gating policy), dispatch, the routed SwiGLU experts as two grouped GEMMs, the shared expert,
// the combine — and then
//   * prints the routing of the run: experts touched, tokens per expert, the busiest experts;
//   * prints the time per layer, the bytes the layer must move (the touched experts' weights, the
//     shared expert, the router, x and y), GB/s and TFLOP/s, and on an H200 the share of its
//     4.8 TB/s memory roofline;
//   * checks y of the first --check-tokens tokens against the double-precision reference computed
//     from the run's own routing (moe::reference::layer_from_routing), and the device's routing
//     against the host's double routing.
//
// Executors: gpu (demo_gpu: moe::Layer on a CUDA device), host (moe::host::run_layer: the CPU
// path, fp32 math, OpenMP when built with it), cpu-fast (demo_sim built with oneDNN: the fast CPU
// executor moe::cpu::Executor, oneDNN GEMMs and a bandwidth-bound GEMV; it prints what a hybrid
// deployment, attention and router on a GPU and experts on the CPU, would move per layer), sim
// (demo_sim: the same moe::Layer kernels in the CPU SIMT simulator, about 1 µs per warp-level op:
// for --preset small and a few tokens).
// The same source builds twice: demo_gpu (nvcc) and demo_sim (g++ with DEEPSHOCK_SIM). demo_gpu
// exits with 77 when it has no device; scripts/demo.sh then runs demo_sim with the same
// arguments, where --executor auto means host.
// --quant int8 | int4 | mxfp4 | nvfp4 | fp8 | w8a8 quantizes the expert weights (routed and shared) with
// the library's host quantizers — int8 with one fp32 scale per output channel (quant::Int8Channel,
// W8A16), 4-bit codes with one fp16 scale per 128 inputs (quant::Int4Group<128>, W4A16), E2M1 codes
// with a power-of-two scale per 32 inputs (quant::Mxfp4) or an E4M3 scale per 16 and an fp32 factor
// per matrix (quant::Nvfp4), E4M3 codes with an fp32 scale per 128 x 128 block (--quant fp8,
// quant::Fp8Block); activations stay bf16 (quant_model.hpp); --quant w8a8 also quantizes
// the activations per token to int8 and runs the expert GEMMs on int8 tensor cores
// (quant::Int8ChannelA8); --quant fp8a8 (the deepseek-v3 presets) quantizes the activations to
// E4M3 per token and 128 inputs and runs E4M3 x E4M3 tensor-core GEMMs (quant::Fp8BlockA8,
// DeepSeek-V3's recipe; sm_89 and newer). It prints the bytes per weight and the error of the quantized layer
// against the bf16 one, and checks y against the double reference on the dequantized weights.
// Model presets (the library's models/presets.hpp) run as their checkpoints ship them:
// gpt-oss-20b with MXFP4 experts, their biases, a router bias (top-4 on the biased logits, softmax
// over the four) and the clamped SwiGLU; deepseek-v3 with FP8 128 x 128 block-scaled experts, the
// correction bias, 8 groups keep 4 and the routed scaling factor 2.5. Their -small twins keep the
// routing and the formats at hidden 256 for CPU runs.
// Exit codes: 0 pass, 1 check failed or library error, 2 bad arguments, 77 no GPU.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "deepshock/deepshock.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "deepshock/moe/layer.hpp"
#include "deepshock/moe/reference_layer.hpp"
#include "executors.hpp"
#include "lora_demo.hpp"
#include "model.hpp"
#include "quant_model.hpp"

namespace ds = deepshock;
namespace gate = deepshock::gate;
namespace moe = deepshock::moe;
namespace rt = deepshock::rt;
using ds::bf16;

namespace {

using namespace demo;

struct Options {
  const Preset* preset = &kPresets[0];
  int tokens = 32, reps = -1, check = 8;  // reps -1: the executor's default
  std::uint64_t seed = 1;
  std::string executor = "auto";
  std::string quant;           // none | int8 | int4 | w8a8 | mxfp4 | nvfp4 | fp8 | fp8a8; empty: the preset's checkpoint format (else none)
  int lora = 0, adapters = 4;  // --lora R: serve --adapters N LoRA adapters of ranks R, R/2, R/4, ... (lora_demo.hpp)
};

// ---- reporting -------------------------------------------------------------------------------
void print_routing(const RunResult& r, int tokens, int k) {
  const int E = static_cast<int>(r.counts.size());
  long total = 0;
  int touched = 0;
  for (int c : r.counts) total += c, touched += c > 0;
  const auto [mn, mx] = std::minmax_element(r.counts.begin(), r.counts.end());
  const double mean = double(total) / E;
  std::printf("routing : %ld assignments (%d tokens x top-%d); %d of %d experts touched; tokens per expert min %d / mean %.2f / "
              "max %d (max/mean %.2f)\n",
              total, tokens, k, touched, E, *mn, mean, *mx, mean > 0 ? *mx / mean : 0.0);
  std::vector<int> order(E);
  for (int e = 0; e < E; ++e) order[e] = e;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return r.counts[a] > r.counts[b]; });
  std::printf("busiest :");
  for (int i = 0; i < std::min(E, 8); ++i) {
    const int c = r.counts[order[i]], bar = *mx > 0 ? (c * 24 + *mx - 1) / *mx : 0;
    std::printf("%s e%-3d %4d %s\n", i == 0 ? "" : "         ", order[i], c, std::string(bar, '#').c_str());
  }
}

template <class Gate, class ExpertT>
int run_preset(const Preset& p, const Options& o, Exec exec) {
  using Codec = typename ExpertT::codec;
  using Act = typename ExpertT::activation;
  constexpr bool kQuant = !Codec::kIdentity;
  constexpr int E = Gate::kExperts, K = Gate::kTopK;
  if (p.experts != E || p.topk != K) {  // the preset table and the switch in main must agree
    std::printf("error   : preset %s says %d experts top-%d, its gate has %d top-%d\n", p.name, p.experts, p.topk, E, K);
    return 1;
  }
  const int T = o.tokens, H = p.hidden, I = p.inter, Is = p.shared;
  const int reps = o.reps >= 0 ? o.reps : exec == Exec::gpu ? 20 : 3;
  std::printf("model   : %s\n", p.about);
  std::printf("shape   : %d token(s), hidden %d, expert intermediate %d, shared intermediate %d%s; %s experts%s, %s weights, "
              "bf16 activations, fp32 accumulation; seed %llu\n",
              T, H, I, Is, p.shared_gate == moe::SharedGate::sigmoid ? " (sigmoid-gated)" : "", Act::kName,
              p.biases ? " with biases (and a router bias)" : "", kQuant ? Codec::kName : "bf16", static_cast<unsigned long long>(o.seed));
  if (exec == Exec::sim && (H > 256 || T > 64))  // small: 0.2 s for 4 tokens; deepseek-v2-lite: 6 s for 1 token
    std::printf("hint    : the simulator runs about 1 us per warp-level op: seconds to minutes per run at this size "
                "(try --preset small --tokens 4, or --executor host)\n");
  if (on_host(exec) && p.gate == GateKind::mixtral)
    std::printf("note    : mixtral on the CPU: 2.8 GB of weights through plain fp32 loops, seconds per run (try --tokens 4 --reps 1)\n");

  {  // The random bf16 model (and its quantized copy) must fit in host memory.
    const double weights = 3.0 * E * H * I + 3.0 * H * Is + double(E) * H;
    const double need = weights * (kQuant ? 3.1 : 2.0), have = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
    if (have > 0 && need > 0.8 * have) {
      std::printf("error   : %s needs about %.1f GB of host memory for its random weights (and their %s copy); this machine has "
                  "%.1f GB (try a -small preset)\n",
                  p.name, need * 1e-9, kQuant ? Codec::kName : "device", have * 1e-9);
      return 1;
    }
  }
  const auto g0 = std::chrono::steady_clock::now();
  const Model m = make_model(p, T, o.seed);
  double gb = 0.0;
  for (const HostTensor& t : m) gb += 2e-9 * static_cast<double>(t.n);
  std::printf("weights : %.2f GB of random bf16 tensors generated in %.2f s (U(-s, s), s = 3/sqrt(fan_in); x ~ U(-1, 1))\n", gb,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count());

  QuantModel qm;
  double bpw = 2.0;  // stored bytes per expert weight
  if constexpr (kQuant) {
    const auto q0 = std::chrono::steady_clock::now();
    if (const ds::Status qs = quantize_model<Codec>(p, m, qm); !qs.ok()) {
      std::printf("error   : %s\n", qs.to_string().c_str());
      return 1;
    }
    bpw = bytes_per_weight(m, qm);
    std::printf("quant   : %s: expert weights quantized in %.2f s (%s); %.3f bytes per weight with scales%s (bf16: 2)\n", Codec::kName,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - q0).count(), quant_rule<Codec>(), bpw,
                ds::quant::act_int8_v<Codec> ? "; activations to int8 per token at run time (amax / 127), int8 tensor-core GEMMs"
                : ds::quant::act_fp8_v<Codec>
                    ? "; activations to E4M3 per token and 128 inputs at run time (amax / 448), FP8 tensor-core GEMMs"
                : std::is_same_v<Codec, Int4> ? " (zero points: none, fixed at 8)"
                                              : "");
  }
  gate::PolicyParams params = gate::default_params<Gate>();
  params.renormalize = p.renormalize;
  gate::RouterOptions options;
  options.routed_scaling_factor = p.scale;
  const Biases biases = make_biases(p, o.seed);
  const moe::LayerDims dims{H, I, Is, T};
  RunResult r;
  const ds::Status st =
      on_host(exec) ? run_host<Gate, ExpertT>(dims, params, options, m, qm, biases, p.shared_gate, reps, r, nullptr, exec == Exec::cpu_fast)
                    : run_device<Gate, ExpertT>(dims, params, options, m, qm, biases, p.shared_gate, reps, r);
  if (!st.ok()) {
    std::printf("error   : %s\n", st.to_string().c_str());
    return 1;
  }
  if (!r.plan.empty()) std::printf("kernels : %s\n", r.plan.c_str());
  print_routing(r, T, K);

  // Performance: what the layer must move and compute once.
  long assignments = 0;
  int touched = 0;
  for (int c : r.counts) assignments += c, touched += c > 0;
  const double HI = double(H) * I, HIs = double(H) * Is;
  const double expert_bytes = touched * 3.0 * HI * bpw;  // codes and scales
  const double shared_bytes = 3.0 * HIs * bpw + (p.shared_gate == moe::SharedGate::sigmoid ? 2.0 * H : 0.0);
  const double router_bytes = 2.0 * E * H, xy_bytes = 2.0 * 2.0 * T * H;
  const double bytes = expert_bytes + shared_bytes + router_bytes + xy_bytes;
  const double flops = assignments * 6.0 * HI + T * (6.0 * HIs + 2.0 * E * H);
  std::printf("traffic : %.1f MB must move: %d touched experts x 3 x %d x %d x %.3f B%s = %.1f MB, shared %.1f MB, router %.2f MB, "
              "x and y %.2f MB; %.2f GFLOP per layer\n",
              bytes * 1e-6, touched, H, I, bpw, kQuant ? " (with scales)" : "", expert_bytes * 1e-6, shared_bytes * 1e-6,
              router_bytes * 1e-6, xy_bytes * 1e-6, flops * 1e-9);
  if (r.timed > 0) {
    const double s = r.us * 1e-6;
    const char* how = exec == Exec::gpu ? "CUDA events, after a warm-up run" : on_host(exec) ? "std::chrono" : "simulator clock";
    std::printf("time    : %.1f us per layer (mean of %d runs; %s)\n", r.us, r.timed, how);
    std::printf("speed   : %.2f GB/s, %.3f TFLOP/s%s\n", bytes / s * 1e-9, flops / s * 1e-12,
                exec == Exec::sim ? " (CPU simulator: not GPU performance)" : "");
    if (exec == Exec::gpu && rt::device_name().find("H200") != std::string::npos)
      std::printf("roofline: %.1f %% of the H200's 4.8 TB/s (floor %.1f us for these bytes)%s\n", bytes / s / 4.8e12 * 100.0,
                  bytes / 4.8e12 * 1e6, bytes < 60e6 ? "; they fit in the 60 MB L2, so repeated runs can beat HBM" : "");
  }

  if (exec == Exec::cpu_fast) {
    // Hybrid use: attention and the router on a GPU, the experts here. Per layer the GPU sends x
    // and the routing (ids and weights) and receives y; the expert weights never cross.
    const double to_cpu = 2.0 * T * H + 8.0 * T * K, to_gpu = 2.0 * T * H;
    std::printf("hybrid  : with attention and the router on a GPU and the experts on this CPU, a layer moves %.3f MB to the CPU "
                "(x %d x %d bf16, ids and weights %d x %d) and %.3f MB back (y); the %.1f MB of expert weights stay here\n",
                to_cpu * 1e-6, T, H, T, K, to_gpu * 1e-6, (expert_bytes + shared_bytes) * 1e-6);
  }

  // Check: y of the first C tokens against the double reference from the run's own routing.
  bool ok = assignments == long(T) * K;
  if (!ok) std::printf("check   : the expert counts sum to %ld, expected %d\n", assignments, T * K);
  const int C = std::min(o.check, T);
  if (C > 0) {
    const ModelPtrs hps = host_pointers(m, qm);
    const std::array<const bf16*, kTensors>& hp = hps.bf;
    const moe::LayerInputs<bf16> in{hp[kX], C, 0, nullptr};
    const auto c0 = std::chrono::steady_clock::now();
    // Quantized: the reference on the dequantized weights (what the layer promises), and on the
    // bf16 weights (what quantization costs).
    const BiasPtrs hb = bias_pointers(biases, E);
    const std::vector<double> ref =
        moe::reference::layer_from_routing(dims, E, K, layer_weights<ExpertT>(hps, p.shared_gate, hb), in, r.ids.data(), r.weights.data());
    if constexpr (kQuant) {
      const std::vector<double> ref_bf16 =
          moe::reference::layer_from_routing(dims, E, K,
                                             layer_weights<moe::Expert<ds::quant::None, ds::lora::None, Act>>(hps, p.shared_gate, hb), in,
                                             r.ids.data(), r.weights.data());
      double num = 0.0, den = 0.0;
      for (std::size_t i = 0; i < ref.size(); ++i) {
        num += (ref[i] - ref_bf16[i]) * (ref[i] - ref_bf16[i]);
        den += ref_bf16[i] * ref_bf16[i];
      }
      std::printf("quant   : the %s layer vs the bf16 layer (double references, the run's routing, %d token(s)): relative RMS error "
                  "%.2e, SNR %.1f dB\n",
                  Codec::kName, C, den > 0 ? std::sqrt(num / den) : 0.0, num > 0 ? 10.0 * std::log10(den / num) : INFINITY);
    }
    double max_err = 0.0, sum_err = 0.0, sum_ref = 0.0;
    long bad = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      const double err = std::abs(double(r.y[i].to_float()) - ref[i]);
      bad += !(err <= 2e-2 + 2e-2 * std::abs(ref[i]));  // NaN fails
      max_err = std::max(max_err, std::isnan(err) ? INFINITY : err);
      sum_err += err;
      sum_ref += std::abs(ref[i]);
    }
    const double mean_rel = sum_ref > 0 ? sum_err / sum_ref : sum_err;
    const bool y_ok = bad == 0 && mean_rel <= 5e-3;
    std::printf("check   : y of %d token(s) vs the double reference from the run's routing (%.1f s): max |err| %.2e, mean rel "
                "%.2e, %ld element(s) out of tolerance (bf16: |err| <= 2e-2 + 2e-2 |ref| each, mean rel <= 5e-3)\n",
                C, std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count(), max_err, mean_rel, bad);
    ok = ok && y_ok;
    if (!on_host(exec)) {  // the CPU executors route with the host reference themselves
      const std::vector<double> logits = gate::reference::gate_logits(hp[kX], hp[kWGate], C, H, E, hb.router);
      const auto hr = gate::reference::route<Gate>(logits, C, nullptr, hb.correction, params, options);
      int compared = 0, differ = 0;
      for (int t = 0; t < C; ++t) {
        if (!(hr.margin[t] > 1e-4)) continue;  // a near-tie: fp32 logits may legitimately choose differently
        ++compared;
        bool same = true;
        for (int j = 0; j < K; ++j) {
          const std::size_t a = std::size_t(t) * K + j;
          same = same && r.ids[a] == hr.ids[a] && std::abs(r.weights[a] - hr.weights[a]) <= 1e-4;
        }
        differ += !same;
      }
      std::printf("routing : %d of %d token(s) compared with the host's double routing (the rest are near-ties): %d differ\n", compared, C,
                  differ);
      ok = ok && differ == 0;
    }
  }
  std::printf("result  : %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

int usage(const char* why) {
  if (why) std::printf("demo: %s\n", why);
  std::printf("usage: demo [--preset NAME] [--tokens N] [--seed S] [--reps R] [--executor auto|gpu|host|cpu-fast|sim] [--check-tokens C] "
              "[--quant none|int8|int4|w8a8|mxfp4|nvfp4|fp8|fp8a8] [--lora R [--adapters N]]\n"
              "  --tokens N        tokens in the batch (default 32)\n"
              "  --reps R          timed runs (default 20 on the GPU, 3 on the CPU)\n"
              "  --executor E      auto: gpu in demo_gpu, host in demo_sim; sim: the kernels in the CPU simulator (demo_sim);\n"
              "                    cpu-fast: the fast CPU executor (demo_sim built with oneDNN)\n"
              "  --check-tokens C  tokens checked against the double reference (default 8; 0 = none)\n"
              "  --quant Q         expert weights: none (bf16, default), int8 (W8A16: per-channel int8), int4 (W4A16: 4-bit, fp16\n"
              "                    scale per 128 inputs), w8a8 (int8 weights, activations int8 per token), mxfp4 (W4A16: E2M1,\n"
              "                    power-of-two scale per 32 inputs), nvfp4 (W4A16: E2M1, E4M3 scale per 16, fp32 per matrix),\n"
              "                    fp8 (W8A16: E4M3, fp32 scale per 128 x 128 block); model presets (gpt-oss-*, deepseek-v3*)\n"
              "                    take their checkpoint's format only, and by default; the deepseek-v3 presets also take\n"
              "                    fp8a8 (the same weights, activations E4M3 per token and 128 inputs, FP8 tensor cores, sm_89+)\n"
              "  --lora R          also serve N LoRA adapters (ranks R, R/2, R/4, ...; R <= 64) in one batch and print their\n"
              "                    overhead (deepseek-v2-lite and small presets; --quant none or int4 base weights)\n"
              "  --adapters N      adapters for --lora (default 4; 1 to 64)\n"
              "presets:\n");
  for (const Preset& p : kPresets) std::printf("  %-17s %s\n", p.name, p.about);
  return 2;
}

/// Parses a whole decimal integer in [lo, hi].
bool parse_int(const char* s, long long lo, long long hi, long long& v) {
  char* end = nullptr;
  v = std::strtoll(s, &end, 10);
  return end != s && *end == '\0' && v >= lo && v <= hi;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      (void)usage(nullptr);
      return 0;
    }
    if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
    const char* v = argv[++i];
    long long n = 0;
    if (a == "--preset") {
      o.preset = nullptr;
      for (const Preset& p : kPresets)
        if (p.name == std::string(v)) o.preset = &p;
      if (!o.preset) return usage(("unknown preset " + std::string(v)).c_str());
    } else if (a == "--executor") {
      o.executor = v;
      if (o.executor != "auto" && o.executor != "gpu" && o.executor != "host" && o.executor != "sim" && o.executor != "cpu-fast")
        return usage(("unknown executor " + o.executor).c_str());
    } else if (a == "--quant") {
      o.quant = v;
      if (o.quant != "none" && o.quant != "int8" && o.quant != "int4" && o.quant != "w8a8" && o.quant != "mxfp4" && o.quant != "nvfp4" &&
          o.quant != "fp8" && o.quant != "fp8a8")
        return usage(("unknown quantization " + o.quant + " (none, int8, int4, w8a8, mxfp4, nvfp4, fp8 or fp8a8)").c_str());
    } else if (a == "--lora" && parse_int(v, 1, kLoraCapacity, n)) {
      o.lora = static_cast<int>(n);
    } else if (a == "--adapters" && parse_int(v, 1, 64, n)) {
      o.adapters = static_cast<int>(n);
    } else if (a == "--tokens" && parse_int(v, 1, 1 << 20, n)) {
      o.tokens = static_cast<int>(n);
    } else if (a == "--reps" && parse_int(v, 0, 1 << 20, n)) {
      o.reps = static_cast<int>(n);
    } else if (a == "--check-tokens" && parse_int(v, 0, 1 << 20, n)) {
      o.check = static_cast<int>(n);
    } else if (a == "--seed" && parse_int(v, 0, INT64_MAX, n)) {
      o.seed = static_cast<std::uint64_t>(n);
    } else {
      return usage(("bad argument " + a + " " + v).c_str());
    }
  }
  // Which executor this binary runs: demo_gpu has gpu and host, demo_sim has sim and host.
  Exec exec = DEEPSHOCK_SIM ? Exec::host : Exec::gpu;
  if (o.executor == "host") exec = Exec::host;
  if (o.executor == "cpu-fast") {
    if (!DEEPSHOCK_DEMO_CPU_FAST) return usage("--executor cpu-fast runs in demo_sim built with oneDNN (libdnnl-dev) and OpenMP");
    exec = Exec::cpu_fast;
  }
  if (o.executor == "sim") {
    if (!DEEPSHOCK_SIM) return usage("--executor sim runs in demo_sim (build/examples/demo_sim)");
    exec = Exec::sim;
  }
  if (o.executor == "gpu" && DEEPSHOCK_SIM) {
    std::printf("demo: demo_sim has no GPU executor (run demo_gpu on a machine with a CUDA device)\n");
    return 77;
  }
  if (exec == Exec::gpu && !rt::device_available()) {
    std::printf("demo: no CUDA device on this machine (backend %s)\n", rt::backend_name());
    return 77;
  }
  std::printf("deepshock demo - one MoE layer, end to end\n");
  if (exec == Exec::host) {
    const unsigned hw = std::thread::hardware_concurrency();
#if defined(_OPENMP)
    std::printf("executor: host (moe::host::run_layer: routing in double, experts in fp32, OpenMP on %u hardware threads)\n", hw);
#else
    std::printf("executor: host (moe::host::run_layer: routing in double, experts in fp32, one thread: built without OpenMP; %u "
                "hardware threads)\n",
                hw);
#endif
  } else if (exec == Exec::cpu_fast) {
    std::printf("executor: cpu-fast (moe::cpu::Executor: routing in double, experts on oneDNN matmul and the AVX-512 GEMV, OpenMP on "
                "%u hardware threads)\n",
                std::thread::hardware_concurrency());
  } else {
    std::printf("executor: %s (moe::Layer on %s: %s)\n", exec_name(exec), rt::backend_name(), rt::device_name().c_str());
  }
  std::printf("preset  : %s\n", o.preset->name);
  if (o.preset->quant != nullptr) {  // a model preset runs its checkpoint's expert format
    if (o.quant.empty()) o.quant = o.preset->quant;
    const bool fp8_activations = o.preset->gate == GateKind::v3 && o.quant == "fp8a8";  // the same checkpoint
    if (o.quant != o.preset->quant && !fp8_activations) {
      std::printf("demo: preset %s ships its experts as %s: pass --quant %s or leave --quant out\n", o.preset->name, o.preset->quant,
                  o.preset->quant);
      return 2;
    }
  } else if (o.quant == "fp8a8") {  // instantiations curated: FP8 activations are DeepSeek-V3's recipe
    std::printf("demo: --quant fp8a8 runs with the deepseek-v3 presets (DeepSeek-V3's recipe); try --quant fp8 here\n");
    return 2;
  }
  if (o.quant.empty()) o.quant = "none";
  if (o.lora > 0) {  // instantiations curated: DeepSeek-V2-Lite's gate, bf16 or int4 (QLoRA-style) base weights
    if (o.preset->gate != GateKind::v2lite || (o.quant != "none" && o.quant != "int4")) {
      std::printf("demo: --lora runs with the deepseek-v2-lite and small presets and --quant none or int4\n");
      return 2;
    }
    const LoraRunArgs la{o.tokens, o.reps >= 0 ? o.reps : exec == Exec::gpu ? 20 : 3, o.check, o.lora, o.adapters, o.seed};
    using Gate = gate::SoftmaxTopK<ds::Experts<64>, ds::TopK<6>>;
    return o.quant == "int4" ? run_lora<Gate, Int4>(*o.preset, la, exec) : run_lora<Gate, ds::quant::None>(*o.preset, la, exec);
  }
  auto run = [&](auto gate_tag) {
    using Gate = decltype(gate_tag);
    if (o.quant == "int8") return run_preset<Gate, moe::Expert<ds::quant::Int8Channel>>(*o.preset, o, exec);
    if (o.quant == "int4") return run_preset<Gate, moe::Expert<Int4>>(*o.preset, o, exec);
    if (o.quant == "w8a8") return run_preset<Gate, moe::Expert<ds::quant::Int8ChannelA8>>(*o.preset, o, exec);
    if (o.quant == "mxfp4") return run_preset<Gate, moe::Expert<ds::quant::Mxfp4>>(*o.preset, o, exec);
    if (o.quant == "nvfp4") return run_preset<Gate, moe::Expert<ds::quant::Nvfp4>>(*o.preset, o, exec);
    if (o.quant == "fp8") return run_preset<Gate, moe::Expert<ds::quant::Fp8Block>>(*o.preset, o, exec);
    return run_preset<Gate, moe::Expert<>>(*o.preset, o, exec);
  };
  // The model presets of the library (models/presets.hpp) run as their checkpoints ship them.
  using GptOss = ds::models::GptOss20b;
  using V3 = ds::models::DeepSeekV3;
  switch (o.preset->gate) {
    case GateKind::gpt_oss: return run_preset<GptOss::Gate, GptOss::Expert>(*o.preset, o, exec);
    case GateKind::v3:
      if (o.quant == "fp8a8") return run_preset<V3::Gate, moe::Expert<ds::quant::Fp8BlockA8>>(*o.preset, o, exec);
      return run_preset<V3::Gate, V3::Expert>(*o.preset, o, exec);
    case GateKind::v2lite:  // DeepSeek-V2-Lite and small
      return run(gate::SoftmaxTopK<ds::Experts<64>, ds::TopK<6>>{});
    case GateKind::qwen3: return run(gate::SoftmaxTopK<ds::Experts<128>, ds::TopK<8>>{});
    case GateKind::qwen15: return run(gate::SoftmaxTopK<ds::Experts<60>, ds::TopK<4>>{});
    case GateKind::mixtral: return run(gate::SoftmaxTopK<ds::Experts<8>, ds::TopK<2>>{});
  }
  return 2;
}
