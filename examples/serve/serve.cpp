// serve — simulated clients send requests with mixed settings through the dynamic batcher
// (serve/batcher.hpp) to one MoE layer, and the example prints throughput, latency percentiles
// and batch fill; then it checks that sampled requests got exactly the bits the layer gives them
// alone (batch invariance through the batcher).
//
//   build/examples/serve_sim [--clients N] [--ms D] [--gap-us G] [--moe-aware] [--executor host|sim]
//   build/examples/serve_gpu [...] [--executor gpu|host]      (the layer on the GPU, buckets as CUDA graphs)
//
// The layer: DeepSeek-V2-Lite's routing (64 experts, top-6, softmax) with SwiGLU experts at CPU
// size (hidden 256, intermediate 128, a shared expert of 256), bf16, followed by a 512-token head
// and each request's own logits policies in one fused pass per step (serve/row_policies.hpp):
// one in three requests asks for a differentially private release of its logits (discrete
// Laplace noise on a 1/16 grid, its own seed: privacy::GridRelease), then its tenant's banned
// tokens apply (policy::PerRow<TokenBan>); the argmax token per row returns with the request
// (with the release, a report-noisy-max). Each client is an open loop: requests of 1 to 4 rows at
// exponential gaps (mean --gap-us), priority 0 to 2, one in ten with a 5 ms deadline, tenants in
// turn. The check: sampled requests run alone give the same y bits and tokens (noise included),
// and no selected token is banned for its tenant. Exit status: 0 on PASS, 1 on a failed check or
// error.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "deepshock/gate/policies.hpp"
#include "deepshock/models/presets.hpp"
#include "deepshock/moe/layer.hpp"
#include "deepshock/policy/per_row.hpp"
#include "deepshock/policy/pipeline.hpp"
#include "deepshock/policy/reference.hpp"
#include "deepshock/policy/safety.hpp"
#include "deepshock/serve/batcher.hpp"
#include "deepshock/serve/host_executor.hpp"
#include "deepshock/serve/layer_executor.hpp"
#include "deepshock/serve/row_policies.hpp"

namespace {
namespace ds = deepshock;
namespace moe = deepshock::moe;
namespace rt = deepshock::rt;
namespace serve = deepshock::serve;
using bf16 = ds::bf16;
using Gate = ds::models::DeepSeekV2Lite::Gate;
using X = moe::Expert<>;
constexpr int kH = 256, kI = 128, kIs = 256, kMaxRows = 64;
constexpr int kVocab = 512, kTenants = 4;  // the head's vocabulary; tenants with their own banned tokens

struct Options {
  int clients = 4, ms = 500, gap_us = 8000, check = 16;
  bool moe_aware = false;
  std::string executor = "auto";
};

struct HostWeights {
  std::vector<bf16> wg, w1, w3, w2, s1, s3, s2;
  explicit HostWeights(std::mt19937_64& rng) {
    auto fill = [&](std::vector<bf16>& v, std::size_t n, float scale) {
      std::uniform_real_distribution<float> d(-scale, scale);
      v.resize(n);
      for (auto& e : v) e = ds::value_from_float<bf16>(d(rng));
    };
    const float sh = 3.0f / std::sqrt(float(kH)), si = 3.0f / std::sqrt(float(kI)), ss = 3.0f / std::sqrt(float(kIs));
    fill(wg, std::size_t(Gate::kExperts) * kH, sh);
    fill(w1, std::size_t(Gate::kExperts) * kI * kH, sh);
    fill(w3, std::size_t(Gate::kExperts) * kI * kH, sh);
    fill(w2, std::size_t(Gate::kExperts) * kH * kI, si);
    fill(s1, std::size_t(kIs) * kH, sh);
    fill(s3, std::size_t(kIs) * kH, sh);
    fill(s2, std::size_t(kH) * kIs, ss);
  }
  template <class Get>
  static moe::LayerWeights<bf16, X> view(Get&& p) {
    moe::LayerWeights<bf16, X> w;
    w.w_gate = p(0);
    w.w1 = p(1);
    w.w3 = p(2);
    w.w2 = p(3);
    w.shared_w1 = p(4);
    w.shared_w3 = p(5);
    w.shared_w2 = p(6);
    return w;
  }
  moe::LayerWeights<bf16, X> host() const {
    const std::vector<bf16>* v[] = {&wg, &w1, &w3, &w2, &s1, &s3, &s2};
    return view([&](int i) { return v[i]->data(); });
  }
};

/// The layer, then a vocabulary head and each request's own logits policies: its DP release
/// (RowSettings::noise, one privacy::GridRelease entry per request), then its tenant's bans
/// (tenant g, the request's RowSettings::policy_group, bans the tokens t with t % kTenants == g:
/// one entry of a policy::PerRow<TokenBan> table), so requests of every tenant and setting share a
/// step and one fused pass; each row's argmax token goes back in Step::ids. (On the host: the
/// policy pipeline's host version; a GPU server would upload the same tables and run
/// policy::run_pipeline on the device logits.)
template <class Layer>
struct WithPolicies {
  using value_type = bf16;
  using Release = ds::policy::PerRow<ds::privacy::GridRelease>;
  using Ban = ds::policy::PerRow<ds::safety::TokenBan>;
  Layer& layer;
  std::vector<float> head;  // [kVocab, kH]
  std::vector<std::vector<std::uint32_t>> masks;
  std::vector<ds::safety::TokenBan::Params> table;
  std::vector<float> logits;
  serve::RowPolicyTables tables;
  WithPolicies(Layer& l, std::mt19937_64& rng) : layer(l) {
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    head.resize(std::size_t(kVocab) * kH);
    for (float& v : head) v = d(rng);
    const int words = ds::safety::mask_words(kVocab);
    for (int g = 0; g < kTenants; ++g) {
      masks.emplace_back(std::size_t(words), 0u);
      for (int t = g; t < kVocab; t += kTenants) masks.back()[std::size_t(t >> 5)] |= 1u << (t & 31);
    }
    for (const auto& m : masks) table.push_back({m.data(), words});
  }
  int hidden() const { return layer.hidden(); }
  ds::Status run(const serve::Step<bf16>& s) {
    DEEPSHOCK_RETURN_IF_ERROR(layer.run(s));
    logits.assign(std::size_t(s.rows) * kVocab, 0.0f);
    DEEPSHOCK_RETURN_IF_ERROR(tables.build(s, kVocab));
    for (int r = 0; r < s.valid_rows; ++r) {
      for (int v = 0; v < kVocab; ++v) {
        float acc = 0.0f;
        for (int h = 0; h < kH; ++h) acc += ds::value_to_float(s.y[std::size_t(r) * kH + h]) * head[std::size_t(v) * kH + h];
        logits[std::size_t(r) * kVocab + v] = acc;
      }
    }
    using Post = ds::policy::Pipeline<Release, Ban>;  // the release first: a ban's -inf must survive its clamp
    const Post::Params p{tables.release_params(), tables.policy_params<ds::safety::TokenBan>(table.data(), kTenants)};
    DEEPSHOCK_RETURN_IF_ERROR(ds::policy::reference::run_pipeline<Post>(p, logits.data(), logits.data(), s.rows, kVocab));
    for (int r = 0; r < s.valid_rows; ++r) {
      const float* row = logits.data() + std::size_t(r) * kVocab;
      s.ids[r] = static_cast<std::int32_t>(std::max_element(row, row + kVocab) - row);
    }
    return ds::Status::success();
  }
};

/// The clients, the batcher, the report and the check, on any executor.
template <class Layer>
int run(Layer& layer, const Options& o, const char* what) {
  std::mt19937_64 head_rng(11);
  WithPolicies<Layer> exec(layer, head_rng);
  using Exec = WithPolicies<Layer>;
  serve::BatcherOptions bo;
  bo.token_budget = kMaxRows;
  bo.max_requests = 32;
  bo.max_queue_delay = std::chrono::microseconds(300);
  bo.buckets = {8, 16, 32, 64};
  bo.moe_aware = o.moe_aware;
  bo.cost = serve::StepCostModel(Gate::kExperts, Gate::kTopK, 20.0, 5.0, 1.0);
  serve::Batcher<Exec> b(exec, bo);
  if (!b.status().ok()) {
    std::printf("error   : %s\n", b.status().to_string().c_str());
    return 1;
  }
  std::printf("serve   : %d clients, requests of 1-4 rows every %d us on average each (Poisson), priorities 0-2, 1 in 10 with a 5 ms "
              "deadline, for %d ms\n",
              o.clients, o.gap_us, o.ms);
  std::printf("layer   : DeepSeek-V2-Lite routing (64 experts, top-6) at hidden %d, intermediate %d, shared %d, bf16, on %s\n", kH, kI, kIs,
              what);
  std::printf("batcher : token budget %d, <= 32 requests per step, max queue delay 300 us, buckets 8 16 32 64%s\n", kMaxRows,
              o.moe_aware ? ", MoE-aware wait" : "");
  std::printf("policy  : a %d-token head, then per request: 1 in 3 a DP release of its logits (discrete Laplace, scale 8 steps of "
              "1/16, its own seed), and its tenant's banned tokens (%d tenants), in one fused pass per step; the argmax token per row "
              "comes back with the request\n",
              kVocab, kTenants);
  // Sampled requests are kept (x and result) for the check.
  struct Kept {
    std::vector<bf16> x;
    std::future<serve::Result<bf16>> result;
    int rows;
    serve::RowSettings settings;
  };
  std::vector<std::vector<Kept>> kept(static_cast<std::size_t>(o.clients));
  std::atomic<bool> stop{false};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < o.clients; ++c)
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(1000 + static_cast<std::uint64_t>(c));
      std::exponential_distribution<double> gap(1.0 / o.gap_us);
      std::uniform_int_distribution<int> rows(1, 4), prio(0, 2), tenth(0, 9);
      std::uniform_real_distribution<float> v(-1.0f, 1.0f);
      int sent = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const int n = rows(rng);
        std::vector<bf16> x(static_cast<std::size_t>(n) * kH);
        for (auto& e : x) e = ds::value_from_float<bf16>(v(rng));
        serve::RequestOptions ro;
        ro.priority = prio(rng);
        ro.settings.policy_group = (c + sent) % kTenants;
        if (sent % 3 == 0)  // a DP release of this request's logits, with a fresh seed
          ro.settings.noise = {ds::privacy::NoiseKind::laplace, {8, 1}, {-4, 64.0f}, rng(), static_cast<std::uint32_t>(sent)};
        if (tenth(rng) == 0) ro.deadline = std::chrono::milliseconds(5);
        auto t = b.submit(x.data(), n, ro);
        if (sent++ % 50 == 0 && static_cast<int>(kept[static_cast<std::size_t>(c)].size()) * o.clients < o.check)
          kept[static_cast<std::size_t>(c)].push_back({std::move(x), std::move(t.result), n, ro.settings});
        std::this_thread::sleep_for(std::chrono::duration<double, std::micro>(gap(rng)));
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(o.ms));
  stop = true;
  for (auto& t : clients) t.join();
  b.shutdown(serve::Shutdown::drain);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const serve::BatcherMetrics m = b.metrics();
  std::printf("%s\n", m.to_string().c_str());
  std::printf("rate    : %.0f requests/s served (%zu in %.2f s)\n", m.succeeded / seconds, m.succeeded, seconds);
  if (o.moe_aware) {
    const serve::StepCostModel cm = b.cost_model();
    std::printf("cost    : fitted step cost %.1f us + %.2f us per expert touched + %.2f us per token\n", cm.fixed_us(), cm.per_expert_us(),
                cm.per_token_us());
  }
  // Each kept request alone, on the same executor: the bits must be the batcher's.
  int checked = 0, bad = 0, banned = 0, released = 0;
  for (auto& per_client : kept)
    for (Kept& k : per_client) {
      const serve::Result<bf16> r = k.result.get();
      if (!r.status.ok()) continue;  // past its deadline, say: nothing to compare
      std::vector<bf16> alone(k.x.size());
      const serve::SoloStep<bf16> s(k.x.data(), alone.data(), k.rows, kH, k.settings);
      if (const ds::Status st = exec.run(s.step()); !st.ok()) {
        std::printf("error   : %s\n", st.to_string().c_str());
        return 1;
      }
      ++checked;
      released += k.settings.noise.kind != ds::privacy::NoiseKind::none;
      bad += std::memcmp(alone.data(), r.y.data(), alone.size() * sizeof(bf16)) != 0 || s.ids() != r.ids;
      for (const std::int32_t id : r.ids) banned += id < 0 || id % kTenants == k.settings.policy_group;
    }
  std::printf("check   : %d sampled request(s) (%d with a DP release) run alone on the same executor: %d differ from their batched "
              "result (y bitwise, tokens); %d selected token(s) banned for their tenant\n",
              checked, released, bad, banned);
  const bool pass = bad == 0 && banned == 0 && checked > 0 && m.completed == m.submitted;
  std::printf("result  : %s\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}

int usage() {
  std::printf("usage: serve [--clients N] [--ms D] [--gap-us G] [--check K] [--moe-aware] [--executor auto|host|gpu|sim]\n");
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](int& v) {
      if (i + 1 >= argc) return false;
      v = std::atoi(argv[++i]);
      return v > 0;
    };
    if (a == "--clients"  ? !next(o.clients)
        : a == "--ms"     ? !next(o.ms)
        : a == "--gap-us" ? !next(o.gap_us)
        : a == "--check"  ? !next(o.check)
                          : false)
      return usage();
    else if (a == "--moe-aware") o.moe_aware = true;
    else if (a == "--executor" && i + 1 < argc) o.executor = argv[++i];
    else if (a != "--clients" && a != "--ms" && a != "--gap-us" && a != "--check") return usage();
  }
  std::mt19937_64 rng(7);
  const HostWeights hw(rng);
  const moe::LayerDims dims{kH, kI, kIs, kMaxRows};
  const bool device = !DEEPSHOCK_SIM && rt::device_available();
  if (o.executor == "auto") o.executor = device ? "gpu" : "host";
  if (o.executor == "host") {
    const auto w = hw.host();
    serve::HostLayerExecutor<Gate, X, bf16> exec(dims, w);
    return run(exec, o, "the CPU (moe::host::run_layer, the exact executor)");
  }
  if (o.executor == "gpu" || o.executor == "sim") {
    if ((o.executor == "sim") != (DEEPSHOCK_SIM != 0)) {
      std::printf("serve: --executor %s runs in serve_%s\n", o.executor.c_str(), o.executor.c_str());
      return 2;
    }
    if (o.executor == "gpu" && !device) {
      std::printf("serve: no CUDA device on this machine\n");
      return 77;
    }
    // The weights on the device (simulator: its memory), the layer, the executor with graphs.
    const std::vector<bf16>* v[] = {&hw.wg, &hw.w1, &hw.w3, &hw.w2, &hw.s1, &hw.s3, &hw.s2};
    std::vector<rt::DeviceBuffer<bf16>> d(7);
    for (int i = 0; i < 7; ++i)
      if (!d[i].allocate(v[i]->size()).ok() || !d[i].copy_from_host(v[i]->data(), v[i]->size()).ok()) {
        std::printf("error   : device allocation or copy failed\n");
        return 1;
      }
    const auto w = HostWeights::view([&](int i) { return static_cast<const bf16*>(d[i].data()); });
    ds::gate::RouterOptions invariant;
    invariant.batch_invariant = true;  // the router's projection the same for every step size: bitwise batch invariance
    moe::Layer<Gate, X, bf16> layer(dims, ds::gate::default_params<Gate>(), invariant);
    serve::LayerExecutor<moe::Layer<Gate, X, bf16>> exec(layer, w, {8, 16, 32, 64});
    if (!exec.status().ok()) {
      std::printf("error   : %s\n", exec.status().to_string().c_str());
      return 1;
    }
    if (o.executor == "sim") {  // the simulator is slow: a short, light run
      o.clients = std::min(o.clients, 2);
      o.gap_us = std::max(o.gap_us, 20000);
      o.check = std::min(o.check, 4);
    }
    const int rc =
        run(exec, o, o.executor == "gpu" ? "the GPU (moe::Layer, buckets as CUDA graphs)" : "the simulator (moe::Layer's kernels)");
    if (o.executor == "gpu") std::printf("graphs  : %d bucket(s) captured and replayed\n", exec.graphs_captured());
    return rc;
  }
  return usage();
}
