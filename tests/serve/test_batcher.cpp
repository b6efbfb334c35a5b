// The dynamic batcher (serve/batcher.hpp) and its MoE cost model (serve/moe_cost.hpp): batch
// invariance through the exact host layer (each request's rows bitwise as run alone, over random
// arrival orders, priorities and padded buckets); budget, cap, priorities and ordering; deadlines,
// the bounded queue, cancellation and bad input; an executor error failing exactly its step;
// shutdown; and a bounded load test with Poisson and bursty producers, cancels, deadlines,
// failures and a shutdown during arrivals, counting that every request completes exactly once.
// Runs in the plain build, under ASan+UBSan and under TSan.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "deepshock/gate/policies.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "deepshock/serve/batcher.hpp"
#include "status_checks.hpp"
#include "test_support.hpp"

namespace {
namespace ds = deepshock;
namespace serve = deepshock::serve;
using namespace std::chrono_literals;

constexpr int kH = 8;

/// A refusal with this code, naming `argument`.
void rejects(const ds::Status& st, ds::StatusCode code, const std::string& argument) {
  CHECK(st.code() == code);
  ds_test::check_rejects(st, argument);
}

/// y = 2 x + 1 row by row (padding rows must come masked, zero, without adapter); records each
/// step (rows, the first value of each valid row, adapters, settings); can hold a step until
/// released, and fail the steps whose index is in `fail`.
struct EchoExec {
  using value_type = float;
  int hidden() const { return kH; }
  struct Seen {
    int rows, valid, requests, bucket;
    std::vector<float> first;
    std::vector<int> adapters, groups;
  };
  std::mutex mu;
  std::vector<Seen> steps;
  std::vector<int> fail;
  std::atomic<bool> hold{false};
  std::atomic<int> waiting{0};
  std::atomic<int> bad_padding{0};

  ds::Status run(const serve::Step<float>& s) {
    while (hold.load()) {
      waiting.store(1);
      std::this_thread::sleep_for(100us);
    }
    Seen seen{s.rows, s.valid_rows, s.requests, s.bucket, {}, {}, {}};
    for (int r = 0; r < s.rows; ++r) {
      const bool pad = r >= s.valid_rows;
      if (pad != (s.token_mask[r] != 0) || (pad && s.adapter_ids[r] != -1)) bad_padding.fetch_add(1);
      for (int c = 0; c < kH; ++c) {
        if (pad && s.x[r * kH + c] != 0.0f) bad_padding.fetch_add(1);
        s.y[r * kH + c] = 2.0f * s.x[r * kH + c] + 1.0f;
      }
      if (!pad) {
        s.ids[r] = static_cast<int>(s.x[r * kH]) * 100 + s.settings[r].policy_group;  // a per-row result
        seen.first.push_back(s.x[r * kH]);
        seen.adapters.push_back(s.adapter_ids[r]);
        seen.groups.push_back(s.settings[r].policy_group);
      }
    }
    std::lock_guard<std::mutex> lk(mu);
    const int index = static_cast<int>(steps.size());
    steps.push_back(std::move(seen));
    for (int f : fail)
      if (f == index) return ds::Status::runtime_error("injected failure of step " + std::to_string(index));
    return ds::Status::success();
  }
};

/// `rows` rows whose every value is `v`.
std::vector<float> rows_of(int rows, float v) { return std::vector<float>(static_cast<std::size_t>(rows) * kH, v); }

/// Waits until the held executor has a step in hand.
void wait_held(EchoExec& e) {
  while (e.waiting.load() == 0) std::this_thread::sleep_for(50us);
}

/// The exact host layer (moe::host::run_layer, batch invariant by design) as a step executor.
struct HostLayerExec {
  using value_type = float;
  using Gate = ds::gate::SoftmaxTopK<ds::Experts<8>, ds::TopK<2>>;
  static constexpr int H = 24, I = 16, E = 8;
  int hidden() const { return H; }
  std::vector<float> wg, w1, w3, w2;
  int max_tokens;
  explicit HostLayerExec(int max_rows, std::mt19937_64& rng)
      : wg(ds_test::uniform(E * H, rng, -0.5f, 0.5f)),
        w1(ds_test::uniform(E * I * H, rng, -0.3f, 0.3f)),
        w3(ds_test::uniform(E * I * H, rng, -0.3f, 0.3f)),
        w2(ds_test::uniform(E * H * I, rng, -0.3f, 0.3f)),
        max_tokens(max_rows) {}
  ds::Status run(const serve::Step<float>& s) const {
    ds::moe::LayerWeights<float, ds::moe::Expert<>> w;
    w.w_gate = wg.data();
    w.w1 = w1.data();
    w.w3 = w3.data();
    w.w2 = w2.data();
    ds::moe::LayerInputs<float> in{s.x, s.rows, 0, s.token_mask};
    ds::moe::LayerOutputs<float> out;
    out.y = s.y;
    return ds::moe::host::run_layer<Gate>(ds::moe::LayerDims{H, I, 0, max_tokens}, ds::gate::default_params<Gate>(),
                                          ds::gate::RouterOptions{}, w, in, out);
  }
};
}  // namespace

TEST_CASE("batcher: each request's rows come back bitwise as run alone (exact host layer), any arrival order, padded buckets", "[serve]") {
  auto rng = ds_test::make_rng(0x5E47);
  HostLayerExec exec(32, rng);
  constexpr int kRequests = 48;
  std::uniform_int_distribution<int> rows_d(1, 7);
  std::vector<std::vector<float>> xs(kRequests);
  std::vector<int> rows(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    rows[i] = rows_d(rng);
    xs[i] = ds_test::uniform(static_cast<std::size_t>(rows[i]) * HostLayerExec::H, rng);
  }
  // Each request alone, as a step of its own rows.
  std::vector<std::vector<float>> alone(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    alone[i].assign(xs[i].size(), 0.0f);
    const serve::SoloStep<float> s(xs[i].data(), alone[i].data(), rows[i], HostLayerExec::H);
    DS_REQUIRE_OK(exec.run(s.step()));
  }
  for (const bool buckets : {false, true})
    for (int round = 0; round < 2; ++round) {
      INFO("buckets " << buckets << " round " << round);
      serve::BatcherOptions o;
      o.token_budget = 20;
      o.max_requests = 6;
      o.max_queue_delay = 300us;
      if (buckets) o.buckets = {4, 8, 16, 32};
      serve::Batcher<HostLayerExec> b(exec, o);
      DS_REQUIRE_OK(b.status());
      std::vector<int> order(kRequests);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<std::future<serve::Result<float>>> results(kRequests);
      std::vector<std::thread> producers;
      for (int p = 0; p < 3; ++p)
        producers.emplace_back([&, p] {
          for (int j = p; j < kRequests; j += 3) {
            const int i = order[j];
            results[i] = b.submit(xs[i].data(), rows[i], {i % 3, 0us, {}}).result;
            if (j % 5 == 0) std::this_thread::sleep_for(50us);
          }
        });
      for (auto& t : producers) t.join();
      for (int i = 0; i < kRequests; ++i) {
        const serve::Result<float> r = results[i].get();
        DS_REQUIRE_OK(r.status);
        REQUIRE(r.y.size() == alone[i].size());
        REQUIRE(std::memcmp(r.y.data(), alone[i].data(), r.y.size() * sizeof(float)) == 0);
        REQUIRE(r.step_rows >= rows[i]);
      }
      b.shutdown();
      const serve::BatcherMetrics m = b.metrics();
      CHECK(m.completed == kRequests);
      CHECK(m.succeeded == kRequests);
      if (buckets) CHECK(m.mean_fill <= 1.0);
      INFO(m.to_string());
      CHECK(m.steps < kRequests);  // requests did share steps
    }
}

TEST_CASE("batcher: token budget, request cap, priorities, arrival order and per-row settings", "[serve]") {
  for (const bool ordered : {false, true}) {
    INFO("preserve_ordering " << ordered);
    EchoExec e;
    serve::BatcherOptions o;
    o.token_budget = 6;
    o.max_requests = 3;
    o.max_queue_delay = 0us;
    o.preserve_ordering = ordered;
    serve::Batcher<EchoExec> b(e, o);
    DS_REQUIRE_OK(b.status());
    e.hold = true;
    std::vector<std::future<serve::Result<float>>> f;
    const auto x0 = rows_of(1, 100.0f);
    f.push_back(b.submit(x0.data(), 1).result);  // taken at once, then held
    wait_held(e);
    // Queued behind it: request i has (rows, priority) below and x = i; adapter i, group 10 + i.
    const int rows[] = {2, 3, 1, 4, 2, 1};
    const int prio[] = {0, 5, 0, 5, 9, 0};
    for (int i = 0; i < 6; ++i) {
      const auto x = rows_of(rows[i], static_cast<float>(i));
      f.push_back(b.submit(x.data(), rows[i], {prio[i], 0us, {i, 10 + i}}).result);
    }
    e.hold = false;
    for (std::size_t i = 0; i < f.size(); ++i) {
      const serve::Result<float> r = f[i].get();
      DS_REQUIRE_OK(r.status);
      // The executor's per-row ids come back with their request: x * 100 + policy group.
      const int id = i == 0 ? 10000 : (static_cast<int>(i) - 1) * 100 + 10 + static_cast<int>(i) - 1;
      REQUIRE(r.ids.size() == (i == 0 ? 1u : static_cast<std::size_t>(rows[i - 1])));
      for (const int v : r.ids) CHECK(v == id);
    }
    b.shutdown();
    REQUIRE(e.bad_padding == 0);
    // The steps after the first, as request ids in the order they ran.
    std::vector<std::vector<int>> got;
    for (std::size_t s = 1; s < e.steps.size(); ++s) {
      const auto& st = e.steps[s];
      CHECK(st.valid <= o.token_budget);
      CHECK(st.requests <= o.max_requests);
      std::vector<int> ids;
      for (std::size_t r = 0; r < st.first.size(); ++r) {
        const int id = static_cast<int>(st.first[r]);
        CHECK(st.adapters[r] == id);
        CHECK(st.groups[r] == 10 + id);
        if (ids.empty() || ids.back() != id) ids.push_back(id);
      }
      got.push_back(ids);
    }
    // Priority order: 4 (9), 1 (5), 3 (5), 0, 2, 5; arrival order: 0 .. 5. Steps take requests
    // while they fit in 6 rows and 3 requests; the first that does not fit ends the step.
    const std::vector<std::vector<int>> want =
        ordered ? std::vector<std::vector<int>>{{0, 1, 2}, {3, 4}, {5}} : std::vector<std::vector<int>>{{4, 1}, {3, 0}, {2, 5}};
    CHECK(got == want);
  }
}

TEST_CASE("batcher: deadlines, the bounded queue, cancellation and bad input", "[serve]") {
  EchoExec e;
  serve::BatcherOptions o;
  o.token_budget = 4;
  o.max_requests = 1;
  o.max_queue_delay = 0us;
  o.max_queued = 3;
  serve::Batcher<EchoExec> b(e, o);
  DS_REQUIRE_OK(b.status());
  const auto x = rows_of(1, 1.0f);
  e.hold = true;
  auto first = b.submit(x.data(), 1);
  wait_held(e);
  auto late = b.submit(x.data(), 1, {0, 1000us, {}});  // expires while the executor is held
  auto keep = b.submit(x.data(), 1);
  auto gone = b.submit(x.data(), 1);
  auto full = b.submit(x.data(), 1);  // the queue holds 3
  CHECK(full.id == 0);
  rejects(full.result.get().status, ds::StatusCode::resource_exhausted, "max_queued");
  DS_REQUIRE_OK(b.cancel(gone.id));
  CHECK(gone.result.get().status.code() == ds::StatusCode::cancelled);
  rejects(b.cancel(gone.id), ds::StatusCode::invalid_argument, "id");
  rejects(b.submit(x.data(), 0).result.get().status, ds::StatusCode::invalid_argument, "rows");
  rejects(b.submit(x.data(), 5).result.get().status, ds::StatusCode::invalid_argument, "rows");
  rejects(b.submit(nullptr, 1).result.get().status, ds::StatusCode::invalid_argument, "x");
  CHECK(b.submit(x.data(), 1, {}, serve::Batcher<EchoExec>::Callback{}) == 0);  // an empty callback: refused, nothing called
  std::this_thread::sleep_for(3ms);
  e.hold = false;
  DS_REQUIRE_OK(first.result.get().status);
  CHECK(late.result.get().status.code() == ds::StatusCode::deadline_exceeded);
  const serve::Result<float> k = keep.result.get();
  DS_REQUIRE_OK(k.status);
  for (float v : k.y) CHECK(v == 3.0f);
  b.shutdown();
  const serve::BatcherMetrics m = b.metrics();
  CHECK(m.submitted == 9);
  CHECK(m.completed == 9);
  CHECK(m.expired == 1);
  CHECK(m.cancelled == 1);
  CHECK(m.rejected == 5);
  CHECK(m.succeeded == 2);

  // run_late: the same late request runs, marked late.
  serve::BatcherOptions ol = o;
  ol.on_deadline = serve::DeadlineAction::run_late;
  serve::Batcher<EchoExec> bl(e, ol);
  e.hold = true;
  e.waiting = 0;
  auto f2 = bl.submit(x.data(), 1);
  wait_held(e);
  auto late2 = bl.submit(x.data(), 1, {0, 500us, {}});
  std::this_thread::sleep_for(2ms);
  e.hold = false;
  DS_REQUIRE_OK(f2.result.get().status);
  const serve::Result<float> l2 = late2.result.get();
  DS_REQUIRE_OK(l2.status);
  CHECK(l2.late);

  // A deadline inside the queue delay: the request runs at once instead of waiting to expire.
  serve::BatcherOptions od;
  od.max_queue_delay = 50ms;
  serve::Batcher<EchoExec> bd(e, od);
  const serve::Result<float> soon = bd.submit(x.data(), 1, {0, 5000us, {}}).result.get();
  DS_REQUIRE_OK(soon.status);
  CHECK(soon.queue_us < 50000.0);
  CHECK_FALSE(soon.late);

  serve::BatcherOptions bad;
  bad.moe_aware = true;  // without the layer's experts and top-k in the cost model
  rejects(serve::Batcher<EchoExec>(e, bad).status(), ds::StatusCode::invalid_argument, "cost");
  bad = {};
  bad.buckets = {8, 4};
  rejects(serve::Batcher<EchoExec>(e, bad).status(), ds::StatusCode::invalid_argument, "buckets");
  bad = {};
  bad.token_budget = 0;
  serve::Batcher<EchoExec> refused(e, bad);
  rejects(refused.submit(x.data(), 1).result.get().status, ds::StatusCode::invalid_argument, "token_budget");
}

TEST_CASE("batcher: an executor error fails exactly its step's requests, and serving goes on", "[serve]") {
  EchoExec e;
  e.fail = {1};
  serve::BatcherOptions o;
  o.token_budget = 3;
  o.max_queue_delay = 0us;
  serve::Batcher<EchoExec> b(e, o);
  e.hold = true;
  std::vector<serve::Ticket<float>> t;
  const auto x = rows_of(1, 1.0f);
  t.push_back(b.submit(x.data(), 1));  // step 0
  wait_held(e);
  for (int i = 0; i < 6; ++i) t.push_back(b.submit(x.data(), 1));  // steps 1 and 2, three each
  e.hold = false;
  for (int i = 0; i < 7; ++i) {
    const serve::Result<float> r = t[static_cast<std::size_t>(i)].result.get();
    if (i >= 1 && i <= 3) {
      CHECK(r.status.code() == ds::StatusCode::runtime_error);
      CHECK(r.status.message().find("step 1") != std::string::npos);
      CHECK(r.y.empty());
    } else {
      DS_REQUIRE_OK(r.status);
    }
  }
  b.shutdown();
  CHECK(b.metrics().failed == 3);
}

TEST_CASE("batcher: shutdown drains or rejects what is queued; later submits are unavailable", "[serve]") {
  for (const serve::Shutdown mode : {serve::Shutdown::drain, serve::Shutdown::reject}) {
    EchoExec e;
    serve::BatcherOptions o;
    o.token_budget = 2;
    o.max_queue_delay = 0us;
    serve::Batcher<EchoExec> b(e, o);
    e.hold = true;
    const auto x = rows_of(1, 1.0f);
    std::vector<serve::Ticket<float>> t;
    t.push_back(b.submit(x.data(), 1));
    wait_held(e);
    for (int i = 0; i < 5; ++i) t.push_back(b.submit(x.data(), 1));
    std::thread stopper([&] { b.shutdown(mode); });
    while (!b.stopping()) std::this_thread::sleep_for(100us);  // shutdown has begun before the executor lets go
    e.hold = false;
    stopper.join();
    DS_REQUIRE_OK(t[0].result.get().status);
    for (std::size_t i = 1; i < t.size(); ++i) {
      const ds::Status st = t[i].result.get().status;
      if (mode == serve::Shutdown::drain) DS_REQUIRE_OK(st);
      else CHECK(st.code() == ds::StatusCode::unavailable);
    }
    CHECK(b.submit(x.data(), 1).result.get().status.code() == ds::StatusCode::unavailable);
    const serve::BatcherMetrics m = b.metrics();
    CHECK(m.completed == m.submitted);
    CHECK(m.queued == 0);
  }
}

TEST_CASE("batcher load test: Poisson and bursty producers, cancels, deadlines, failures, shutdown mid-stream", "[serve][load]") {
  auto rng = ds_test::make_rng(0x10AD);
  EchoExec e;
  for (int i = 3; i < 400; i += 17) e.fail.push_back(i);
  serve::BatcherOptions o;
  o.token_budget = 16;
  o.max_requests = 8;
  o.max_queue_delay = 100us;
  o.max_queued = 64;
  o.buckets = {4, 8, 16};
  o.moe_aware = true;
  o.cost = serve::StepCostModel(64, 6, 5.0, 1.0, 0.1);
  serve::Batcher<EchoExec> b(e, o);
  DS_REQUIRE_OK(b.status());
  constexpr int kProducers = 4, kPerProducer = 150;
  std::atomic<int> callbacks{0}, ok{0}, twice{0}, submits{0};
  std::vector<std::atomic<int>> seen(kProducers * kPerProducer);
  std::vector<std::uint64_t> seeds;
  for (int p = 0; p < kProducers; ++p) seeds.push_back(rng());
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      std::mt19937_64 r(seeds[static_cast<std::size_t>(p)]);
      std::exponential_distribution<double> gap(1.0 / 40.0);  // Poisson arrivals, mean 40 us
      std::uniform_int_distribution<int> rows(1, 5), coin(0, 9);
      for (int i = 0; i < kPerProducer; ++i) {
        const int idx = p * kPerProducer + i;
        const auto x = rows_of(rows(r), static_cast<float>(idx));
        serve::RequestOptions ro;
        ro.priority = coin(r) % 3;
        if (coin(r) == 0) ro.deadline = 50us;
        const std::uint64_t id = b.submit(x.data(), static_cast<int>(x.size() / kH), ro, [&, idx](serve::Result<float> res) {
          if (seen[static_cast<std::size_t>(idx)].fetch_add(1) != 0) twice.fetch_add(1);
          callbacks.fetch_add(1);
          if (res.status.ok()) {
            ok.fetch_add(1);
            for (float v : res.y)
              if (v != 2.0f * static_cast<float>(idx) + 1.0f) twice.fetch_add(1000);  // a wrong row would show here
          }
        });
        submits.fetch_add(1);
        if (id != 0 && coin(r) == 1) (void)b.cancel(id);  // may have run already: then a Status, no effect
        // Bursty producer (odd p): bursts of 10 back to back, then a pause; even p: Poisson gaps.
        if (p % 2 == 0) std::this_thread::sleep_for(std::chrono::duration<double, std::micro>(gap(r)));
        else if (i % 10 == 9) std::this_thread::sleep_for(400us);
      }
    });
  // Shut down while the producers are still submitting (two thirds in): what arrives after gets
  // unavailable.
  while (submits.load() < 2 * kProducers * kPerProducer / 3) std::this_thread::sleep_for(100us);
  b.shutdown(serve::Shutdown::drain);
  for (auto& t : producers) t.join();
  const serve::BatcherMetrics m = b.metrics();
  INFO(m.to_string());
  if (std::getenv("DS_PRINT_METRICS") != nullptr) WARN(m.to_string());
  CHECK(twice == 0);
  CHECK(callbacks == kProducers * kPerProducer);
  for (auto& s : seen) REQUIRE(s.load() == 1);
  CHECK(m.submitted == static_cast<std::size_t>(kProducers * kPerProducer));
  CHECK(m.completed == m.submitted);
  CHECK(m.succeeded + m.failed + m.rejected + m.cancelled + m.expired == m.completed);
  CHECK(m.succeeded == static_cast<std::size_t>(ok.load()));
  CHECK(e.bad_padding == 0);
}

TEST_CASE("MoE cost model: expected experts, the least-squares fit, and when waiting pays", "[serve]") {
  CHECK(serve::expected_experts(64, 6, 1) == Approx(6.0));
  CHECK(serve::expected_experts(64, 6, 1000) == Approx(64.0));
  CHECK(serve::expected_experts(64, 6, 8) == Approx(64.0 * (1.0 - std::pow(58.0 / 64.0, 8))));
  // A fit on exact model costs recovers the coefficients.
  serve::StepCostModel m(64, 6, 0.0, 0.0, 0.0);
  for (int t : {1, 2, 4, 8, 16, 32, 64, 128}) m.observe(t, 30.0 + 12.0 * serve::expected_experts(64, 6, t) + 0.5 * t);
  CHECK(m.fixed_us() == Approx(30.0).margin(1e-3));
  CHECK(m.per_expert_us() == Approx(12.0).margin(1e-3));
  CHECK(m.per_token_us() == Approx(0.5).margin(1e-3));
  // Waiting pays when weight reads dominate and requests are likely to arrive in the time left
  // (0.05 requests/us of 2 rows over 100 us: 5 expected); not when none arrive, when the budget is
  // reached, when no time is left, or when only per-token work would be shared.
  CHECK(serve::should_wait(m, 2, 256, 0.05, 2.0, 100.0, 0.05));
  CHECK_FALSE(serve::should_wait(m, 2, 256, 0.0, 2.0, 100.0, 0.05));
  CHECK_FALSE(serve::should_wait(m, 256, 256, 0.05, 2.0, 100.0, 0.05));
  CHECK_FALSE(serve::should_wait(m, 2, 256, 0.05, 2.0, 0.0, 0.05));
  const serve::StepCostModel per_token_only(64, 6, 0.0, 0.0, 1.0);
  CHECK_FALSE(serve::should_wait(per_token_only, 2, 256, 0.05, 2.0, 100.0, 0.05));
  // Once every expert is touched and the per-token arithmetic dominates, 50 more tokens lower
  // the cost per token by 0.6%, below the 5% margin; from 2 tokens, by far more.
  const serve::StepCostModel compute_bound(64, 6, 0.0, 1.0, 10.0);
  CHECK_FALSE(serve::should_wait(compute_bound, 200, 256, 0.05, 10.0, 100.0, 0.05));
  CHECK(serve::should_wait(compute_bound, 2, 256, 0.05, 10.0, 100.0, 0.05));
  // Arrivals unlikely in the time left (one request per 3000 us, 500 us left: P(none) = 0.85):
  // the expected gain falls under the margin (2.6%), so the step runs now; at one request per
  // 100 us it waits.
  const serve::StepCostModel small(64, 6, 20.0, 5.0, 1.0);
  CHECK(serve::should_wait(small, 3, 64, 1.0 / 100.0, 2.5, 500.0, 0.05));
  CHECK_FALSE(serve::should_wait(small, 3, 64, 1.0 / 3000.0, 2.5, 500.0, 0.05));
}
