// Expert parallelism on the host executor over the in-process transport (ep/host_ep.hpp,
// ep/inprocess.hpp, ep/placement.hpp): threads play 1..8 ranks, each with its share of the
// tokens and its placement's experts; every rank's y must be bitwise what the single-rank host
// layer gives those tokens — with E not divisible by the rank count, ranks without tokens, ranks
// that receive nothing, hot-expert skew and replicated experts. Also: the counts (rows
// deduplicated per destination, loads, bytes), a failing rank making every rank fail (none
// hangs), a rank that never arrives (bounded waits), and the placement's own checks. Runs in the
// plain build, under ASan+UBSan and under TSan.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "deepshock/ep/host_ep.hpp"
#include "deepshock/ep/inprocess.hpp"
#include "deepshock/ep/placement.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "status_checks.hpp"
#include "test_support.hpp"

namespace {
namespace ds = deepshock;
namespace ep = deepshock::ep;
namespace moe = deepshock::moe;
using namespace std::chrono_literals;

constexpr int kE = 13, kK = 3, kH = 24, kI = 16, kIs = 24;  // E = 13: divisible by no rank count > 1
using Gate = ds::gate::SoftmaxTopK<ds::Experts<kE>, ds::TopK<kK>>;
using X = moe::Expert<>;

/// The whole layer's weights, and any rank's share of them.
template <class T>
struct Model {
  std::vector<T> wg, w1, w3, w2, s1, s3, s2, sg;
  bool shared;
  Model(std::mt19937_64& rng, bool with_shared) : shared(with_shared) {
    auto fill = [&](std::vector<T>& v, std::size_t n, float a) {
      v.clear();
      for (const float f : ds_test::uniform(n, rng, -a, a)) v.push_back(T(f));
    };
    fill(wg, std::size_t(kE) * kH, 0.5f);
    fill(w1, std::size_t(kE) * kI * kH, 0.3f);
    fill(w3, std::size_t(kE) * kI * kH, 0.3f);
    fill(w2, std::size_t(kE) * kH * kI, 0.3f);
    fill(s1, std::size_t(kIs) * kH, 0.3f);
    fill(s3, std::size_t(kIs) * kH, 0.3f);
    fill(s2, std::size_t(kH) * kIs, 0.3f);
    fill(sg, std::size_t(kH), 0.3f);
  }
  moe::LayerDims dims(int max_tokens) const { return {kH, kI, shared ? kIs : 0, max_tokens}; }
  moe::LayerWeights<T, X> view(const T* e1, const T* e3, const T* e2) const {
    moe::LayerWeights<T, X> w;
    w.w_gate = wg.data();
    w.w1 = e1;
    w.w3 = e3;
    w.w2 = e2;
    if (shared) {
      w.shared_w1 = s1.data();
      w.shared_w3 = s3.data();
      w.shared_w2 = s2.data();
      w.shared_gate = sg.data();
      w.shared_gate_kind = moe::SharedGate::sigmoid;
    }
    return w;
  }
  moe::LayerWeights<T, X> all() const { return view(w1.data(), w3.data(), w2.data()); }
};

/// One rank's expert weights: the blocks of its held experts, in placement order.
template <class T>
struct RankWeights {
  std::vector<T> w1, w3, w2;
  RankWeights(const Model<T>& m, const std::vector<int>& held) {
    const std::size_t up = std::size_t(kI) * kH, down = std::size_t(kH) * kI;
    for (const int e : held) {
      w1.insert(w1.end(), m.w1.begin() + std::ptrdiff_t(e * up), m.w1.begin() + std::ptrdiff_t((e + 1) * up));
      w3.insert(w3.end(), m.w3.begin() + std::ptrdiff_t(e * up), m.w3.begin() + std::ptrdiff_t((e + 1) * up));
      w2.insert(w2.end(), m.w2.begin() + std::ptrdiff_t(e * down), m.w2.begin() + std::ptrdiff_t((e + 1) * down));
    }
  }
};

/// Rank r's tokens: [first[r], first[r + 1]) of the batch.
std::vector<int> split_tokens(int tokens, int ranks, std::mt19937_64& rng, bool last_empty) {
  std::vector<int> first(std::size_t(ranks) + 1, 0);
  const int share = last_empty && ranks > 1 ? ranks - 1 : ranks;
  std::vector<int> cuts(std::size_t(share - 1));
  for (int& c : cuts) c = std::uniform_int_distribution<int>(0, tokens)(rng);
  std::sort(cuts.begin(), cuts.end());
  for (int r = 1; r < share; ++r) first[std::size_t(r)] = cuts[std::size_t(r - 1)];
  for (int r = share; r <= ranks; ++r) first[std::size_t(r)] = tokens;
  return first;
}

struct RunResult {
  std::vector<ds::Status> status;
  std::vector<ep::EpStats> stats;
};

/// Runs one step on `ranks` threads: rank r gets tokens [first[r], first[r + 1]) of x and writes
/// the same rows of y. With `routed`, ids / wts are the batch's routing; else the gate routes.
template <class T>
RunResult run_ep(const Model<T>& m, const ep::Placement& pl, const std::vector<T>& x, int tokens, const std::vector<int>& first,
                 std::vector<T>& y, const std::vector<int>* ids = nullptr, const std::vector<float>* wts = nullptr,
                 std::chrono::milliseconds timeout = 10000ms) {
  const int R = pl.ranks();
  ep::InProcessGroup group(R, timeout);
  RunResult res{std::vector<ds::Status>(std::size_t(R)), std::vector<ep::EpStats>(std::size_t(R))};
  std::vector<std::thread> threads;
  for (int r = 0; r < R; ++r)
    threads.emplace_back([&, r] {
      const RankWeights<T> rw(m, pl.held(r));
      const auto w = m.view(rw.w1.data(), rw.w3.data(), rw.w2.data());
      const int t0 = first[std::size_t(r)], n = first[std::size_t(r) + 1] - t0;
      const moe::LayerInputs<T> in{x.data() + std::size_t(t0) * kH, n, 0, nullptr};
      moe::LayerOutputs<T> out;
      out.y = y.data() + std::size_t(t0) * kH;
      auto tr = group.transport(r);
      const moe::LayerDims d = m.dims(tokens);
      res.status[std::size_t(r)] =
          ids != nullptr
              ? ep::run_host_layer_routed(tr, pl, d, kK, w, in, ids->data() + std::size_t(t0) * kK, wts->data() + std::size_t(t0) * kK, out,
                                          &res.stats[std::size_t(r)])
              : ep::run_host_layer<Gate>(tr, pl, d, ds::gate::default_params<Gate>(), {}, w, in, out, &res.stats[std::size_t(r)]);
    });
  for (auto& t : threads) t.join();
  return res;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// The counts every step must satisfy: rows deduplicated per destination, loads adding up.
void check_stats(const RunResult& res, long long assignments) {
  long long sent = 0, received = 0, remote = 0, load = 0, total = 0;
  std::uint64_t bytes_sent = 0, bytes_received = 0;
  for (const ep::EpStats& s : res.stats) {
    sent += s.rows_sent;
    received += s.rows_received;
    remote += s.assignments_remote;
    total += s.assignments;
    bytes_sent += s.bytes_sent;
    bytes_received += s.bytes_received;
    for (const long long l : s.expert_load) load += l;
    CHECK(s.rows_sent <= s.assignments_remote);  // a row goes once per destination, however many of its slots are there
  }
  CHECK(sent == received);
  CHECK(bytes_sent == bytes_received);
  CHECK(total == assignments);
  CHECK(load == assignments);
  CHECK(remote <= assignments);
}
}  // namespace

TEST_CASE("EP over 1..8 in-process ranks: every rank's y is bitwise the single-rank layer's", "[ep]") {
  auto rng = ds_test::make_rng(0xE9A11);
  for (const bool shared : {true, false}) {
    const Model<float> m(rng, shared);
    constexpr int kT = 37;
    const std::vector<float> x = ds_test::uniform(std::size_t(kT) * kH, rng);
    std::vector<float> ref(x.size());
    std::vector<int> ids(std::size_t(kT) * kK);
    moe::LayerOutputs<float> ro;
    ro.y = ref.data();
    ro.topk_ids = ids.data();
    DS_REQUIRE_OK(moe::host::run_layer<Gate>(m.dims(kT), ds::gate::default_params<Gate>(), {}, m.all(),
                                             moe::LayerInputs<float>{x.data(), kT, 0, nullptr}, ro));
    for (int R = 1; R <= 8; ++R) {
      INFO("shared " << shared << ", ranks " << R);
      const ep::Placement pl = ep::Placement::contiguous(kE, R);
      DS_REQUIRE_OK(pl.validate());
      const std::vector<int> first = split_tokens(kT, R, rng, /*last_empty=*/R >= 3);
      std::vector<float> y(x.size(), std::nanf(""));
      const RunResult res = run_ep(m, pl, x, kT, first, y);
      for (const ds::Status& st : res.status) DS_REQUIRE_OK(st);
      REQUIRE(same_bits(y, ref));
      check_stats(res, static_cast<long long>(ids.size()));
      if (R >= 2) {
        long long sent = 0, remote = 0;
        for (const auto& s : res.stats) sent += s.rows_sent, remote += s.assignments_remote;
        CHECK(sent < remote);  // with top-3 over few ranks, tokens share destinations: deduplication saved rows
      }
    }
  }
}

TEST_CASE("EP with hot-expert skew, replicas and ranks that receive nothing: bitwise the single-rank layer", "[ep]") {
  auto rng = ds_test::make_rng(0x5CE3);
  const Model<ds::bf16> m(rng, /*shared=*/true);
  constexpr int kT = 64;
  std::vector<ds::bf16> x;
  for (const float f : ds_test::uniform(std::size_t(kT) * kH, rng)) x.push_back(ds::bf16(f));
  // Skewed routing: slot 0 of every token on expert 4; the others mostly on 4's neighbours and
  // never on experts 10-12 (held by the last rank alone: it receives nothing); some slots empty.
  std::vector<int> ids(std::size_t(kT) * kK);
  std::vector<float> wts(ids.size());
  std::uniform_real_distribution<float> wd(0.05f, 1.0f);
  for (int t = 0; t < kT; ++t) {
    ids[std::size_t(t) * kK] = 4;
    ids[std::size_t(t) * kK + 1] = t % 7 == 0 ? -1 : 3 + t % 3;  // 3, 4, 5: a token may repeat 4 (two slots, one expert)
    ids[std::size_t(t) * kK + 2] = t % 2 == 0 ? 6 : t % 10;      // up to 9
    for (int j = 0; j < kK; ++j) wts[std::size_t(t) * kK + j] = wd(rng);
  }
  std::vector<ds::bf16> ref(x.size());
  moe::LayerOutputs<ds::bf16> ro;
  ro.y = ref.data();
  DS_REQUIRE_OK(moe::host::run_layer_routed(m.dims(kT), kE, kK, m.all(), moe::LayerInputs<ds::bf16>{x.data(), kT, 0, nullptr}, ids.data(),
                                            wts.data(), ro));
  long long valid = 0;
  for (const int id : ids) valid += id >= 0;
  // Four ranks; expert 4 has a copy on every rank, expert 5 on two; rank 3 holds 10-12 only.
  ep::Placement pl = ep::Placement::from_lists(kE, {{0, 1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}});
  for (const int r : {0, 2, 3}) DS_REQUIRE_OK(pl.replicate(4, r));
  DS_REQUIRE_OK(pl.replicate(5, 2));
  DS_REQUIRE_OK(pl.validate());
  CHECK(pl.local_map(3) == std::vector<int>{-1, -1, -1, -1, 3, -1, -1, -1, -1, -1, 0, 1, 2});
  for (const bool replicas : {false, true}) {
    INFO("replicas " << replicas);
    const ep::Placement use = replicas ? pl : ep::Placement::from_lists(kE, {{0, 1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}});
    const std::vector<int> first{0, 30, 30, 51, 64};  // rank 1 holds no tokens
    std::vector<ds::bf16> y(x.size(), ds::bf16(-7.0f));
    const RunResult res = run_ep(m, use, x, kT, first, y, &ids, &wts);
    for (const ds::Status& st : res.status) DS_REQUIRE_OK(st);
    REQUIRE(same_bits(y, ref));
    check_stats(res, valid);
    if (!replicas) {
      CHECK(res.stats[3].rows_received == 0);                                       // its experts got no tokens: it still took part
      CHECK(res.stats[1].expert_load[0] == std::count(ids.begin(), ids.end(), 4));  // expert 4 (rank 1's local 0): all of it
    } else {
      for (int r = 0; r < 4; ++r)
        CHECK(res.stats[std::size_t(r)].expert_load[std::size_t(use.local_index(r, 4))] > 0);  // the load is split
    }
  }
}

TEST_CASE("EP failures: a failing rank fails every rank, a missing rank times out, bad placements are named", "[ep]") {
  auto rng = ds_test::make_rng(0xFA11);
  const Model<float> m(rng, true);
  constexpr int kT = 12, R = 4;
  const std::vector<float> x = ds_test::uniform(std::size_t(kT) * kH, rng);
  std::vector<int> ids(std::size_t(kT) * kK);
  std::vector<float> wts(ids.size(), 0.5f);
  for (std::size_t a = 0; a < ids.size(); ++a) ids[a] = int(a % kE);
  const ep::Placement pl = ep::Placement::contiguous(kE, R);
  const std::vector<int> first{0, 3, 6, 9, 12};
  std::vector<float> y(x.size());
  // Rank 2 gets an id outside [-1, E): it reports invalid_argument; the others fail too.
  auto bad = ids;
  bad[std::size_t(7) * kK + 1] = kE;
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult res = run_ep(m, pl, x, kT, first, y, &bad, &wts, 5000ms);
  CHECK(std::chrono::steady_clock::now() - t0 < 4000ms);  // the abort woke them, not the timeout
  ds_test::check_rejects(res.status[2], "topk_ids");
  for (int r = 0; r < R; ++r) {
    INFO("rank " << r << ": " << res.status[std::size_t(r)].to_string());
    CHECK_FALSE(res.status[std::size_t(r)].ok());
    if (r != 2) CHECK(res.status[std::size_t(r)].message().find("ep rank 2") != std::string::npos);
  }
  // A rank that never arrives: the others give up after the timeout, naming the count.
  {
    ep::InProcessGroup group(3, 100ms);
    std::vector<ds::Status> st(2);
    std::vector<std::thread> th;
    for (int r = 0; r < 2; ++r)
      th.emplace_back([&, r] {
        auto tr = group.transport(r);
        ep::Exchange xc(3);
        st[std::size_t(r)] = tr.exchange(xc);
      });
    for (auto& t : th) t.join();
    for (const ds::Status& s : st) {
      CHECK(s.code() == ds::StatusCode::deadline_exceeded);
      CHECK(s.message().find("of 3 ranks arrived") != std::string::npos);
    }
    CHECK_FALSE(group.status().ok());
  }
  // Mismatched sizes: a receiver expecting other byte counts fails the group.
  {
    ep::InProcessGroup group(2, 2000ms);
    std::vector<ds::Status> st(2);
    std::vector<std::thread> th;
    int a = 1, b = 2;
    std::int64_t sink = 0;
    for (int r = 0; r < 2; ++r)
      th.emplace_back([&, r] {
        auto tr = group.transport(r);
        ep::Exchange xc(2);
        xc.send[std::size_t(1 - r)] = r == 0 ? &a : &b;
        xc.send_bytes[std::size_t(1 - r)] = sizeof(int);
        xc.recv[std::size_t(1 - r)] = &sink;
        xc.recv_bytes[std::size_t(1 - r)] = r == 0 ? sizeof(std::int64_t) : sizeof(int);  // rank 0 expects 8 bytes
        st[std::size_t(r)] = tr.exchange(xc);
      });
    for (auto& t : th) t.join();
    CHECK_FALSE(st[0].ok());
    CHECK_FALSE(st[1].ok());
    CHECK(group.status().message().find("recv_bytes") != std::string::npos);
  }
  // Placements.
  ds_test::check_rejects(ep::Placement::from_lists(4, {{0, 1}, {2}}).validate(), "placement");        // expert 3 nowhere
  ds_test::check_rejects(ep::Placement::from_lists(4, {{0, 1, 2, 3}, {}}).validate(), "placement");   // rank 1 holds none
  ds_test::check_rejects(ep::Placement::from_lists(4, {{0, 1, 1}, {2, 3}}).validate(), "placement");  // twice
  ds_test::check_rejects(ep::Placement::from_lists(4, {{0, 5}, {1, 2, 3}}).validate(), "held");
  ep::Placement p = ep::Placement::contiguous(4, 2);
  ds_test::check_rejects(p.replicate(1, 0), "rank");  // already there
  ds_test::check_rejects(p.replicate(4, 0), "expert");
  CHECK(ep::Placement::contiguous(13, 5).held(0) == std::vector<int>{0, 1, 2});  // 3 3 3 2 2
  CHECK(ep::Placement::contiguous(13, 5).held(4) == std::vector<int>{11, 12});
  // A placement for another rank count than the transport's.
  ep::InProcessGroup g2(2, 1000ms);
  auto tr = g2.transport(0);
  moe::LayerOutputs<float> o;
  o.y = y.data();
  ds_test::check_rejects(ep::run_host_layer_routed(tr, pl, m.dims(kT), kK, m.all(), moe::LayerInputs<float>{x.data(), 3, 0, nullptr},
                                                   ids.data(), wts.data(), o),
                         "placement");
}
