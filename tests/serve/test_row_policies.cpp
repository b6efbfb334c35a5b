// Per-request policies through the batcher (serve/row_policies.hpp): requests with their own DP
// release (privacy::GridRelease), fairness group (fair::GroupThreshold) and safety entry
// (a tenant's TokenBan) share steps, and each request's outputs and selected tokens are bitwise
// what it gets alone, over random arrival orders and padded buckets. Also: a bad noise spec is
// refused at submit, naming the field, and the tables' own errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "deepshock/fair/postprocess.hpp"
#include "deepshock/policy/per_row.hpp"
#include "deepshock/policy/pipeline.hpp"
#include "deepshock/policy/reference.hpp"
#include "deepshock/policy/safety.hpp"
#include "deepshock/privacy/release_policy.hpp"
#include "deepshock/serve/batcher.hpp"
#include "deepshock/serve/row_policies.hpp"
#include "status_checks.hpp"
#include "test_support.hpp"

namespace {
namespace ds = deepshock;
namespace serve = deepshock::serve;
namespace pv = deepshock::privacy;
using namespace std::chrono_literals;

constexpr int kV = 67;  // the "vocabulary": x is a request's logits, odd length
constexpr int kTenants = 2, kGroups = 3;

/// y = the fused per-request pipeline over x (release, then fairness threshold, then the
/// tenant's bans); ids = each row's argmax. The host reference of the pipeline: a device
/// executor runs policy::run_pipeline on uploaded copies of the same tables.
struct PolicyExec {
  using value_type = float;
  using Release = ds::policy::PerRow<pv::GridRelease>;
  using Fair = ds::policy::PerRow<ds::fair::GroupThreshold>;
  using Ban = ds::policy::PerRow<ds::safety::TokenBan>;
  using Post = ds::policy::Pipeline<Release, Fair, Ban>;
  int hidden() const { return kV; }
  std::vector<std::vector<std::uint32_t>> masks;
  std::vector<ds::safety::TokenBan::Params> bans;
  std::vector<float> thresholds{0.25f, -0.5f, 1.0f};
  serve::RowPolicyTables tables;

  PolicyExec() {
    const int words = ds::safety::mask_words(kV);
    for (int g = 0; g < kTenants; ++g) {  // tenant g bans the tokens t with t % 3 == g
      masks.emplace_back(std::size_t(words), 0u);
      for (int t = g; t < kV; t += 3) masks.back()[std::size_t(t >> 5)] |= 1u << (t & 31);
    }
    for (const auto& m : masks) bans.push_back({m.data(), words});
  }
  ds::Status run(const serve::Step<float>& s) {
    DEEPSHOCK_RETURN_IF_ERROR(tables.build(s, kV));
    ds::fair::GroupThreshold::Params fair{thresholds.data(), nullptr, kGroups};
    const Post::Params p{tables.release_params(), tables.fairness_params(fair),
                         tables.policy_params<ds::safety::TokenBan>(bans.data(), kTenants)};
    DEEPSHOCK_RETURN_IF_ERROR(ds::policy::reference::run_pipeline<Post>(p, s.x, s.y, s.rows, kV));
    for (int r = 0; r < s.valid_rows; ++r) {
      const float* row = s.y + std::size_t(r) * kV;
      s.ids[r] = static_cast<std::int32_t>(std::max_element(row, row + kV) - row);
    }
    return ds::Status::success();
  }
};

struct Request {
  std::vector<float> x;
  int rows;
  serve::RowSettings settings;
};

/// The request as a step of its own.
void run_alone(PolicyExec& e, const Request& q, std::vector<float>& y, std::vector<std::int32_t>& ids) {
  y.assign(q.x.size(), 0.0f);
  const serve::SoloStep<float> s(q.x.data(), y.data(), q.rows, kV, q.settings);
  DS_REQUIRE_OK(e.run(s.step()));
  ids = s.ids();
}
}  // namespace

TEST_CASE("per-request policies: each request's DP release, fairness group and bans as alone, bitwise, in shared steps", "[serve]") {
  auto rng = ds_test::make_rng(0x9011C7);
  PolicyExec exec;
  constexpr int kRequests = 40;
  std::uniform_int_distribution<int> rows_d(1, 5), kind_d(0, 2), group_d(-1, kGroups - 1), tenant_d(-1, kTenants - 1);
  std::vector<Request> reqs(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    Request& q = reqs[std::size_t(i)];
    q.rows = rows_d(rng);
    q.x = ds_test::uniform(std::size_t(q.rows) * kV, rng, -3.0f, 3.0f);
    q.settings.policy_group = tenant_d(rng);
    q.settings.fairness_group = group_d(rng);
    const int kind = kind_d(rng);
    if (kind != 0)
      q.settings.noise = {kind == 1 ? pv::NoiseKind::laplace : pv::NoiseKind::gaussian,
                          kind == 1 ? pv::Rational{5, 2} : pv::Rational{16, 1}, pv::Grid{-4, 4.0f}, rng(), static_cast<std::uint32_t>(i)};
  }
  std::vector<std::vector<float>> alone(kRequests);
  std::vector<std::vector<std::int32_t>> alone_ids(kRequests);
  for (int i = 0; i < kRequests; ++i) run_alone(exec, reqs[std::size_t(i)], alone[std::size_t(i)], alone_ids[std::size_t(i)]);

  // What each policy did, on requests that have only that one.
  int noisy = 0, fair_only = 0, ban_only = 0;
  for (int i = 0; i < kRequests; ++i) {
    const Request& q = reqs[std::size_t(i)];
    const std::vector<float>& y = alone[std::size_t(i)];
    const bool noise = q.settings.noise.kind != pv::NoiseKind::none, fair = q.settings.fairness_group >= 0,
               ban = q.settings.policy_group >= 0;
    if (noise) {  // on the 1/16 grid with noise: most values leave the input's grid point
      ++noisy;
      std::size_t moved = 0;
      for (std::size_t j = 0; j < y.size(); ++j) moved += std::fabs(y[j] - q.x[j]) > 1.0f / 32;
      CHECK(moved * 2 > y.size());
    } else if (fair && !ban) {
      ++fair_only;
      for (std::size_t j = 0; j < y.size(); ++j) REQUIRE(y[j] == q.x[j] - exec.thresholds[std::size_t(q.settings.fairness_group)]);
    } else if (ban && !fair) {
      ++ban_only;
      for (std::size_t j = 0; j < y.size(); ++j) REQUIRE(y[j] == (int(j % kV) % 3 == q.settings.policy_group ? -INFINITY : q.x[j]));
    } else if (!fair && !ban) {
      REQUIRE(std::memcmp(y.data(), q.x.data(), y.size() * sizeof(float)) == 0);
    }
    for (const std::int32_t id : alone_ids[std::size_t(i)]) CHECK((ban ? id % 3 != q.settings.policy_group : id >= 0));
  }
  CHECK(noisy > 0);
  CHECK(fair_only > 0);
  CHECK(ban_only > 0);

  for (const bool buckets : {false, true}) {
    INFO("buckets " << buckets);
    serve::BatcherOptions o;
    o.token_budget = 16;
    o.max_requests = 6;
    o.max_queue_delay = 300us;
    if (buckets) o.buckets = {4, 8, 16};
    serve::Batcher<PolicyExec> b(exec, o);
    DS_REQUIRE_OK(b.status());
    std::vector<int> order(kRequests);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::future<serve::Result<float>>> results(kRequests);
    std::vector<std::thread> producers;
    for (int p = 0; p < 2; ++p)
      producers.emplace_back([&, p] {
        for (int j = p; j < kRequests; j += 2) {
          const int i = order[std::size_t(j)];
          const Request& q = reqs[std::size_t(i)];
          results[std::size_t(i)] = b.submit(q.x.data(), q.rows, {0, 0us, q.settings}).result;
          if (j % 4 == 0) std::this_thread::sleep_for(50us);
        }
      });
    for (auto& t : producers) t.join();
    int shared = 0;
    for (int i = 0; i < kRequests; ++i) {
      const serve::Result<float> r = results[std::size_t(i)].get();
      DS_REQUIRE_OK(r.status);
      REQUIRE(r.y.size() == alone[std::size_t(i)].size());
      REQUIRE(std::memcmp(r.y.data(), alone[std::size_t(i)].data(), r.y.size() * sizeof(float)) == 0);
      REQUIRE(r.ids == alone_ids[std::size_t(i)]);
      shared += r.step_requests > 1;
    }
    CHECK(shared > 0);  // requests with different settings did share steps
    b.shutdown();
  }
}

TEST_CASE("per-request policies: a bad noise spec is refused at submit, naming the field; the tables' own errors", "[serve]") {
  PolicyExec exec;
  serve::Batcher<PolicyExec> b(exec, {});
  DS_REQUIRE_OK(b.status());
  const std::vector<float> x(kV, 0.5f);
  serve::RequestOptions o;
  o.settings.noise = {pv::NoiseKind::laplace, {0, 1}, {}, 1, 0};
  ds::Status st = b.submit(x.data(), 1, o).result.get().status;
  CHECK(st.code() == ds::StatusCode::invalid_argument);
  ds_test::check_rejects(st, "options.settings.noise.param");
  o.settings.noise = {pv::NoiseKind::gaussian, {1, 1}, {0, 0.25f}, 1, 0};  // a bound below one grid step
  st = b.submit(x.data(), 1, o).result.get().status;
  CHECK(st.code() == ds::StatusCode::out_of_range);
  ds_test::check_rejects(st, "options.settings.noise.grid.clamp_bound");
  o.settings.noise = {pv::NoiseKind::laplace, {1, 1}, {0, 8.0f}, 1, 0};
  DS_REQUIRE_OK(b.submit(x.data(), 1, o).result.get().status);
  b.shutdown();

  serve::RowPolicyTables t;
  serve::Step<float> s;
  s.rows = s.valid_rows = 1;
  ds_test::check_rejects(t.build(s, kV), "step");  // no settings, no request_row
  ds_test::check_rejects(t.build(s, 0), "vocab");
  s.valid_rows = 2;  // more valid rows than the step has
  ds_test::check_rejects(t.build(s, kV), "step");
  s.valid_rows = 1;
  serve::RowSettings set;
  set.noise = o.settings.noise;
  const int continues = 1;  // a row that claims to continue a request no row started
  s.settings = &set;
  s.request_row = &continues;
  ds_test::check_rejects(t.build(s, kV), "request_row");
}
