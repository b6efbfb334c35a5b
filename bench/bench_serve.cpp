// bench_serve — the dynamic batcher (serve/batcher.hpp) on the host.
//
// Rows:
//   BM_BatcherOverhead/producers   requests of one row through the queue to a no-op executor
//       (copies in and out, nothing computed): requests/s and us_per_request, the batcher's own
//       cost. Targets (issue 19): <= 5 us per request and >= 200k requests/s on this machine.
//   BM_ServeLayer/concurrency/moe_aware   closed-loop clients (each sends a request of 1 to 4
//       rows, waits for it, sends the next) through the batcher to one MoE layer on the exact
//       host executor (64 experts, top-6, H 256, I 128: DeepSeek-V2-Lite's routing at CPU size):
//       throughput and p50 / p90 / p99 latency per concurrency, the latency/throughput curve
//       (JSON with --benchmark_out), with a fixed queue delay and with the MoE-aware wait.
//
//   bench_serve --benchmark_out=serve.json --benchmark_out_format=json
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "deepshock/models/presets.hpp"
#include "deepshock/serve/batcher.hpp"
#include "deepshock/serve/host_executor.hpp"

namespace {
namespace ds = deepshock;
namespace serve = deepshock::serve;
namespace moe = deepshock::moe;

struct NoopExec {
  using value_type = float;
  int hidden() const { return 64; }
  ds::Status run(const serve::Step<float>&) { return ds::Status::success(); }
};

void BM_BatcherOverhead(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  constexpr int kPerProducer = 20000;
  NoopExec exec;
  const std::vector<float> x(64, 1.0f);
  double seconds = 0.0;
  std::size_t total = 0;
  for (auto _ : state) {
    serve::BatcherOptions o;
    o.token_budget = 256;
    o.max_requests = 256;
    o.max_queue_delay = std::chrono::microseconds(50);
    o.max_queued = 1 << 20;
    serve::Batcher<NoopExec> b(exec, o);
    std::atomic<int> done{0};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&] {
        for (int i = 0; i < kPerProducer; ++i)
          (void)b.submit(x.data(), 1, {}, [&](serve::Result<float> r) {
            benchmark::DoNotOptimize(r.y.data());
            done.fetch_add(1, std::memory_order_relaxed);
          });
      });
    for (auto& t : threads) t.join();
    b.shutdown(serve::Shutdown::drain);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    seconds += s;
    total += static_cast<std::size_t>(done.load());
  }
  state.counters["requests/s"] = static_cast<double>(total) / seconds;
  state.counters["us_per_request"] = 1e6 * seconds / static_cast<double>(total);
}
BENCHMARK(BM_BatcherOverhead)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);

/// DeepSeek-V2-Lite's routing (64 experts, top-6) at CPU size, bf16, on the exact host executor.
struct SmallLayer {
  using Gate = ds::models::DeepSeekV2Lite::Gate;
  using X = moe::Expert<>;
  static constexpr int H = 256, I = 128, E = Gate::kExperts, kMaxRows = 64;
  std::vector<ds::bf16> wg, w1, w3, w2;
  moe::LayerWeights<ds::bf16, X> w;
  SmallLayer() {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<float> d(-0.1f, 0.1f);
    auto fill = [&](std::vector<ds::bf16>& v, std::size_t n) {
      v.resize(n);
      for (auto& e : v) e = ds::value_from_float<ds::bf16>(d(rng));
    };
    fill(wg, static_cast<std::size_t>(E) * H);
    fill(w1, static_cast<std::size_t>(E) * I * H);
    fill(w3, static_cast<std::size_t>(E) * I * H);
    fill(w2, static_cast<std::size_t>(E) * H * I);
    w.w_gate = wg.data();
    w.w1 = w1.data();
    w.w3 = w3.data();
    w.w2 = w2.data();
  }
};

void BM_ServeLayer(benchmark::State& state) {
  const int clients = static_cast<int>(state.range(0));
  const bool moe_aware = state.range(1) != 0;
  static const SmallLayer L;
  serve::HostLayerExecutor<SmallLayer::Gate, SmallLayer::X, ds::bf16> exec(moe::LayerDims{SmallLayer::H, SmallLayer::I, 0,
                                                                                          SmallLayer::kMaxRows},
                                                                           L.w);
  serve::BatcherOptions o;
  o.token_budget = SmallLayer::kMaxRows;
  o.max_requests = 32;
  o.max_queue_delay = std::chrono::microseconds(500);
  o.buckets = {8, 16, 32, 64};
  o.moe_aware = moe_aware;
  o.cost = serve::StepCostModel(SmallLayer::E, SmallLayer::Gate::kTopK, 20.0, 5.0, 1.0);  // a start; refitted from the steps
  double seconds = 0.0;
  std::size_t requests = 0;
  serve::BatcherMetrics m;
  for (auto _ : state) {
    serve::Batcher<decltype(exec)> b(exec, o);
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> served{0};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        std::mt19937_64 rng(static_cast<std::uint64_t>(c) + 1);
        std::uniform_int_distribution<int> rows(1, 4);
        std::uniform_real_distribution<float> v(-1.0f, 1.0f);
        std::vector<ds::bf16> x(4 * SmallLayer::H);
        for (auto& e : x) e = ds::value_from_float<ds::bf16>(v(rng));
        while (!stop.load(std::memory_order_relaxed)) {
          const serve::Result<ds::bf16> r = b.submit(x.data(), rows(rng)).result.get();
          if (r.status.ok()) served.fetch_add(1, std::memory_order_relaxed);
        }
      });
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    stop = true;
    for (auto& t : threads) t.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    b.shutdown();
    m = b.metrics();
    state.SetIterationTime(s);
    seconds += s;
    requests += served.load();
  }
  state.counters["requests/s"] = static_cast<double>(requests) / seconds;
  state.counters["p50_us"] = m.total_us.p50;
  state.counters["p90_us"] = m.total_us.p90;
  state.counters["p99_us"] = m.total_us.p99;
  state.counters["queue_p50_us"] = m.queue_us.p50;
  state.counters["mean_fill"] = m.mean_fill;
  state.counters["rows_per_step"] = m.mean_step_rows;
  state.SetLabel(moe_aware ? "moe-aware wait" : "fixed delay");
}
BENCHMARK(BM_ServeLayer)->ArgsProduct({{1, 2, 4, 8, 16, 32}, {0, 1}})->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
