// deepshock demo: a Mixture-of-Experts router preview, end to end.
//
// Until the MoE layer lands, the demo runs the first stage of the pipeline: for T tokens it
// projects hidden states onto E expert gates (bf16 inputs, fp32 accumulation), takes a softmax,
// picks the top-k experts per token with the library's warp top-k, renormalises their weights
// and counts the tokens per expert. It checks every result against a double-precision host
// reference and prints the routing statistics, the time and the bytes moved per second.
//
// The same source builds twice: demo_gpu (nvcc, runs on a CUDA device) and demo_sim (g++ with
// DEEPSHOCK_SIM, runs the identical kernel in the CPU SIMT simulator). demo_gpu exits with code
// 77 when there is no device; scripts/demo.sh then runs demo_sim.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "deepshock/deepshock.hpp"

namespace ds = deepshock;

namespace {

/// One warp per token. Lane l owns experts l, l+32, ... (N = ceil(E/32) per lane).
template <int E, int K>
DEEPSHOCK_KERNEL void router_preview_kernel(const ds::bf16* x, const ds::bf16* wg, int T, int H, int* ids, float* weights,
                                            int* counts) {
  constexpr int N = (E + 31) / 32;
  const int warps_per_block = static_cast<int>(blockDim.x) / 32;
  const int t = static_cast<int>(blockIdx.x) * warps_per_block + static_cast<int>(threadIdx.x) / 32;
  if (t >= T) return;  // whole warps leave together
  const int lane = static_cast<int>(threadIdx.x) % 32;
  float logit[N];
  int idx[N];
  float local_max = -INFINITY;
  for (int j = 0; j < N; ++j) {
    const int e = lane + 32 * j;
    idx[j] = e < E ? e : -1;
    float acc = 0.0f;
    if (e < E)
      for (int h = 0; h < H; ++h) acc += x[static_cast<long long>(t) * H + h].to_float() * wg[static_cast<long long>(e) * H + h].to_float();
    logit[j] = e < E ? acc : -INFINITY;
    local_max = fmaxf(local_max, logit[j]);
  }
  const float m = ds::warp::reduce_max(local_max);
  float local_sum = 0.0f;
  for (int j = 0; j < N; ++j) {
    logit[j] = idx[j] >= 0 ? expf(logit[j] - m) : 0.0f;
    local_sum += logit[j];
  }
  const float inv = 1.0f / ds::warp::reduce_sum(local_sum);
  for (int j = 0; j < N; ++j) logit[j] *= inv;  // now probabilities
  ds::warp::Ranked<float> top[K];
  ds::warp::topk<K>(logit, idx, top);
  float chosen = 0.0f;
  for (int r = 0; r < K; ++r) chosen += top[r].score;
  if (lane < K) {
    ids[t * K + lane] = top[lane].index;
    weights[t * K + lane] = top[lane].score / chosen;
    atomicAdd(&counts[top[lane].index], 1);
  }
}

struct Preset {
  const char* name;
  const char* models;
  int tokens, hidden, experts, topk;
};
constexpr Preset kPresets[] = {
    {"deepseek-v2-lite", "DeepSeek-V2-Lite router shape (E=64, k=6)", 512, 2048, 64, 6},
    {"mixtral", "Mixtral-8x7B router shape (E=8, k=2)", 512, 4096, 8, 2},
    {"deepseek-v3", "DeepSeek-V3 router shape (E=256, k=8), softmax scoring", 256, 7168, 256, 8},
    {"small", "a small configuration for a quick look", 96, 256, 64, 6},
};

struct Result {
  std::vector<int> ids, counts;
  std::vector<float> weights;
  double ms_per_run = 0.0;
};

template <int E, int K>
ds::Status run_router(const Preset& p, const std::vector<ds::bf16>& x, const std::vector<ds::bf16>& wg, int reps, Result& out) {
  namespace rt = ds::rt;
  const std::size_t T = static_cast<std::size_t>(p.tokens);
  rt::DeviceBuffer<ds::bf16> dx, dwg;
  rt::DeviceBuffer<int> dids, dcounts;
  rt::DeviceBuffer<float> dw;
  DEEPSHOCK_RETURN_IF_ERROR(dx.allocate(x.size()));
  DEEPSHOCK_RETURN_IF_ERROR(dwg.allocate(wg.size()));
  DEEPSHOCK_RETURN_IF_ERROR(dids.allocate(T * K));
  DEEPSHOCK_RETURN_IF_ERROR(dw.allocate(T * K));
  DEEPSHOCK_RETURN_IF_ERROR(dcounts.allocate(E));
  DEEPSHOCK_RETURN_IF_ERROR(dx.copy_from_host(x.data(), x.size()));
  DEEPSHOCK_RETURN_IF_ERROR(dwg.copy_from_host(wg.data(), wg.size()));
  DEEPSHOCK_RETURN_IF_ERROR(dids.fill_bytes(0xFF));  // poison: -1 ids, NaN weights
  DEEPSHOCK_RETURN_IF_ERROR(dw.fill_bytes(0xFF));
  rt::Stream stream;
  DEEPSHOCK_RETURN_IF_ERROR(stream.create());
  const int warps_per_block = 4;
  const ds::LaunchConfig cfg{dim3(static_cast<unsigned>((p.tokens + warps_per_block - 1) / warps_per_block)), dim3(32 * warps_per_block), 0,
                             stream.get()};
  rt::Event start, stop;
  DEEPSHOCK_RETURN_IF_ERROR(start.create());
  DEEPSHOCK_RETURN_IF_ERROR(stop.create());
  for (int rep = 0; rep <= reps; ++rep) {  // rep 0 is the warm-up
    if (rep == 1) DEEPSHOCK_RETURN_IF_ERROR(start.record(stream.get()));
    DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(dcounts.data(), 0, dcounts.bytes(), stream.get()));
    DEEPSHOCK_RETURN_IF_ERROR(ds::launch(router_preview_kernel<E, K>, cfg, dx.data(), dwg.data(), p.tokens, p.hidden, dids.data(),
                                         dw.data(), dcounts.data()));
  }
  DEEPSHOCK_RETURN_IF_ERROR(stop.record(stream.get()));
  DEEPSHOCK_RETURN_IF_ERROR(stop.synchronize());
  float ms = 0.0f;
  DEEPSHOCK_RETURN_IF_ERROR(rt::Event::elapsed_ms(start, stop, ms));
  out.ms_per_run = reps > 0 ? ms / reps : 0.0;
  out.ids.resize(T * K);
  out.weights.resize(T * K);
  out.counts.resize(E);
  DEEPSHOCK_RETURN_IF_ERROR(dids.copy_to_host(out.ids.data(), out.ids.size(), stream.get()));
  DEEPSHOCK_RETURN_IF_ERROR(dw.copy_to_host(out.weights.data(), out.weights.size(), stream.get()));
  DEEPSHOCK_RETURN_IF_ERROR(dcounts.copy_to_host(out.counts.data(), out.counts.size(), stream.get()));
  return stream.synchronize();
}

ds::Status dispatch(const Preset& p, const std::vector<ds::bf16>& x, const std::vector<ds::bf16>& wg, int reps, Result& out) {
  if (p.experts == 64 && p.topk == 6) return run_router<64, 6>(p, x, wg, reps, out);
  if (p.experts == 8 && p.topk == 2) return run_router<8, 2>(p, x, wg, reps, out);
  if (p.experts == 256 && p.topk == 8) return run_router<256, 8>(p, x, wg, reps, out);
  return ds::Status::unsupported("no router instantiation for this (experts, topk)");
}

/// Double-precision reference: ids, renormalised weights, and whether the k-th/(k+1)-th gap is
/// large enough (relative 1e-4) that fp32 must reproduce the selection.
void reference(const Preset& p, const std::vector<ds::bf16>& x, const std::vector<ds::bf16>& wg, std::vector<int>& ids,
               std::vector<double>& weights, std::vector<char>& decisive) {
  const int T = p.tokens, H = p.hidden, E = p.experts, K = p.topk;
  ids.assign(static_cast<std::size_t>(T * K), -1);
  weights.assign(static_cast<std::size_t>(T * K), 0.0);
  decisive.assign(static_cast<std::size_t>(T), 1);
  std::vector<double> prob(static_cast<std::size_t>(E));
  std::vector<int> order(static_cast<std::size_t>(E));
  for (int t = 0; t < T; ++t) {
    double mx = -INFINITY;
    for (int e = 0; e < E; ++e) {
      double acc = 0.0;
      for (int h = 0; h < H; ++h)
        acc += double(x[static_cast<std::size_t>(t) * H + h].to_float()) * double(wg[static_cast<std::size_t>(e) * H + h].to_float());
      prob[static_cast<std::size_t>(e)] = acc;
      mx = std::max(mx, acc);
    }
    double sum = 0.0;
    for (double& v : prob) { v = std::exp(v - mx); sum += v; }
    for (double& v : prob) v /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return prob[static_cast<std::size_t>(a)] > prob[static_cast<std::size_t>(b)]; });
    double chosen = 0.0;
    for (int r = 0; r < K; ++r) chosen += prob[static_cast<std::size_t>(order[static_cast<std::size_t>(r)])];
    for (int r = 0; r < K; ++r) {
      ids[static_cast<std::size_t>(t * K + r)] = order[static_cast<std::size_t>(r)];
      weights[static_cast<std::size_t>(t * K + r)] = prob[static_cast<std::size_t>(order[static_cast<std::size_t>(r)])] / chosen;
    }
    for (int r = 0; r + 1 < std::min(K + 1, E); ++r) {
      const double a = prob[static_cast<std::size_t>(order[static_cast<std::size_t>(r)])];
      const double b = prob[static_cast<std::size_t>(order[static_cast<std::size_t>(r + 1)])];
      if (a - b < 1e-4 * a) decisive[static_cast<std::size_t>(t)] = 0;
    }
  }
}

int usage() {
  std::printf("usage: demo [--preset NAME] [--reps N] [--seed S]\npresets:");
  for (const Preset& p : kPresets) std::printf(" %s", p.name);
  std::printf("\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string preset = DEEPSHOCK_SIM ? "small" : "deepseek-v2-lite";
  int reps = DEEPSHOCK_SIM ? 2 : 50;
  unsigned long seed = 2026;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--preset" && i + 1 < argc) preset = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoul(argv[++i], nullptr, 10);
    else return usage();
  }
  const Preset* p = nullptr;
  for (const Preset& q : kPresets)
    if (preset == q.name) p = &q;
  if (!p || reps < 0) return usage();
  if (!ds::rt::device_available()) {
    std::printf("demo: no CUDA device on this machine (backend %s)\n", ds::rt::backend_name());
    return 77;
  }
  std::printf("deepshock demo — MoE router preview\n");
  std::printf("backend : %s, device: %s\n", ds::rt::backend_name(), ds::rt::device_name().c_str());
  std::printf("preset  : %s — %s\n", p->name, p->models);
  std::printf("shape   : tokens %d, hidden %d, experts %d, top-%d (bf16 in, fp32 accumulate), seed %lu\n", p->tokens, p->hidden,
              p->experts, p->topk, seed);

  // Inputs from the counter-based RNG: the same seed gives the same inputs on every machine.
  ds::PhiloxStream rng(seed);
  std::vector<ds::bf16> x(static_cast<std::size_t>(p->tokens) * p->hidden), wg(static_cast<std::size_t>(p->experts) * p->hidden);
  const float wscale = 1.0f / std::sqrt(static_cast<float>(p->hidden));
  for (auto& v : x) v = ds::bf16(rng.normal());
  for (auto& v : wg) v = ds::bf16(rng.normal() * wscale * 2.0f);

  Result r;
  const ds::Status st = dispatch(*p, x, wg, reps, r);
  if (!st.ok()) {
    std::printf("error: %s\n", st.to_string().c_str());
    return 1;
  }
  std::vector<int> ref_ids;
  std::vector<double> ref_w;
  std::vector<char> decisive;
  reference(*p, x, wg, ref_ids, ref_w, decisive);
  int compared = 0, id_mismatch = 0, weight_bad = 0;
  double max_werr = 0.0;
  for (int t = 0; t < p->tokens; ++t) {
    if (!decisive[static_cast<std::size_t>(t)]) continue;
    ++compared;
    for (int k = 0; k < p->topk; ++k) {
      const std::size_t i = static_cast<std::size_t>(t * p->topk + k);
      if (r.ids[i] != ref_ids[i]) ++id_mismatch;
      const double err = std::abs(double(r.weights[i]) - ref_w[i]);
      if (!(err <= 1e-4)) ++weight_bad;  // NaN counts as bad
      max_werr = std::max(max_werr, std::isnan(err) ? INFINITY : err);
    }
  }
  const long total = std::accumulate(r.counts.begin(), r.counts.end(), 0L);
  const auto [mn, mx] = std::minmax_element(r.counts.begin(), r.counts.end());
  const double mean = double(total) / p->experts;
  std::printf("routing : %ld assignments (expected %d), per-expert load min %d / mean %.1f / max %d (max/mean %.2f)\n", total,
              p->tokens * p->topk, *mn, mean, *mx, *mx / mean);
  std::printf("check   : %d tokens compared with the double reference (%d near-ties skipped): %d id mismatches, "
              "%d weights off by > 1e-4 (max error %.2e)\n",
              compared, p->tokens - compared, id_mismatch, weight_bad, max_werr);
  const double bytes = 2.0 * (x.size() + wg.size()) + 8.0 * p->tokens * p->topk + 4.0 * p->experts;
  if (reps > 0)
    std::printf("time    : %.3f ms per run over %d runs, %.2f GB/s of compulsory traffic%s\n", r.ms_per_run, reps,
                bytes / (r.ms_per_run * 1e-3) / 1e9, DEEPSHOCK_SIM ? " (simulator on the CPU: not GPU performance)" : "");
  const bool ok = id_mismatch == 0 && weight_bad == 0 && total == long(p->tokens) * p->topk && compared > 0;
  std::printf("result  : %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
