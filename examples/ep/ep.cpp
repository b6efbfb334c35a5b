// ep — one MoE layer with its experts spread over ranks (expert parallelism), checked bitwise
// against the same layer on one rank.
//
//   build/examples/ep_sim [--ranks 2,4,8] [--tokens N] [--executor host|sim]
//   build/examples/ep_gpu [--ranks 2,4,8] [--tokens N] [--executor gpu|host]   (ranks as threads on one GPU)
//
// The layer: DeepSeek-V2-Lite's routing (64 experts, top-6 softmax) with a shared expert, bf16,
// at CPU size (hidden 256, intermediate 128, shared 256; the simulator: hidden 64). Threads play
// the ranks over the in-process transport (ep/inprocess.hpp); each holds a share of the tokens
// and its experts by a contiguous placement, plus, from 4 ranks on, a copy of the hottest expert
// on the rank with the least load (a replica). For every rank count the example prints what each
// rank sent and received — token rows (one per token and destination rank: deduplicated), bytes,
// assignments served elsewhere, its expert load — and checks that every token's y is bitwise the
// single-rank layer's. Executors: host (ep::run_host_layer on moe::host's exact executor), sim
// (ep::DeviceEp: the device layer's kernels in the CPU simulator), gpu (the same on a GPU, the
// ranks sharing it; with several GPUs an NCCL transport takes the in-process one's place).
// Exit status: 0 on PASS, 1 on a failed check or error, 2 on bad arguments, 77 without a GPU.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "deepshock/ep/host_ep.hpp"
#include "deepshock/ep/inprocess.hpp"
#include "deepshock/ep/placement.hpp"
#include "deepshock/models/presets.hpp"
#include "deepshock/moe/host_layer.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/ep/device_ep.hpp"
#include "deepshock/moe/layer.hpp"
#endif

namespace {
namespace ds = deepshock;
namespace ep = deepshock::ep;
namespace moe = deepshock::moe;
using bf16 = ds::bf16;
using Gate = ds::models::DeepSeekV2Lite::Gate;
using X = moe::Expert<>;
constexpr int kE = Gate::kExperts, kK = Gate::kTopK;

struct Options {
  std::vector<int> ranks{2, 4, 8};
  int tokens = 64;
  std::string executor = "auto";
};

/// The whole layer's weights on the host (random from a seed), and any rank's expert blocks.
struct Model {
  moe::LayerDims dims;
  std::vector<bf16> wg, w1, w3, w2, s1, s3, s2;
  Model(moe::LayerDims d, std::mt19937_64& rng) : dims(d) {
    auto fill = [&](std::vector<bf16>& v, std::size_t n, float a) {
      std::uniform_real_distribution<float> u(-a, a);
      v.resize(n);
      for (auto& e : v) e = ds::value_from_float<bf16>(u(rng));
    };
    const std::size_t H = d.hidden, I = d.intermediate, Is = d.shared_intermediate;
    fill(wg, kE * H, 3.0f / std::sqrt(float(H)));
    fill(w1, kE * I * H, 3.0f / std::sqrt(float(H)));
    fill(w3, kE * I * H, 3.0f / std::sqrt(float(H)));
    fill(w2, kE * H * I, 3.0f / std::sqrt(float(I)));
    fill(s1, Is * H, 3.0f / std::sqrt(float(H)));
    fill(s3, Is * H, 3.0f / std::sqrt(float(H)));
    fill(s2, H * Is, 3.0f / std::sqrt(float(Is)));
  }
  /// The routed experts of `held` (every expert when empty), in that order.
  void experts(const std::vector<int>& held, std::vector<bf16>& e1, std::vector<bf16>& e3, std::vector<bf16>& e2) const {
    const std::size_t up = std::size_t(dims.intermediate) * dims.hidden;
    e1.clear(), e3.clear(), e2.clear();
    for (int i = 0; i < (held.empty() ? kE : int(held.size())); ++i) {
      const std::size_t e = std::size_t(held.empty() ? i : held[std::size_t(i)]);
      e1.insert(e1.end(), w1.begin() + std::ptrdiff_t(e * up), w1.begin() + std::ptrdiff_t((e + 1) * up));
      e3.insert(e3.end(), w3.begin() + std::ptrdiff_t(e * up), w3.begin() + std::ptrdiff_t((e + 1) * up));
      e2.insert(e2.end(), w2.begin() + std::ptrdiff_t(e * up), w2.begin() + std::ptrdiff_t((e + 1) * up));
    }
  }
  using P = const bf16*;
  moe::LayerWeights<bf16, X> view(P wg_, P e1, P e3, P e2, P s1_, P s3_, P s2_) const {
    moe::LayerWeights<bf16, X> w;
    w.w_gate = wg_, w.w1 = e1, w.w3 = e3, w.w2 = e2;
    w.shared_w1 = s1_, w.shared_w3 = s3_, w.shared_w2 = s2_;
    return w;
  }
};

ds::gate::PolicyParams params() {
  ds::gate::PolicyParams p = ds::gate::default_params<Gate>();
  p.renormalize = ds::models::DeepSeekV2Lite::kRenormalize;
  return p;
}

/// The placement for R ranks: contiguous, and from 4 ranks on the hottest expert also on the
/// least-loaded rank.
ep::Placement place(int R, const std::vector<int>& counts, std::string& note) {
  ep::Placement p = ep::Placement::contiguous(kE, R);
  note = "contiguous";
  if (R < 4)
    return note += " (" + std::to_string(kE / R) + (kE % R != 0 ? " or " + std::to_string(kE / R + 1) : std::string()) + " experts each)",
           p;
  const int hot = int(std::max_element(counts.begin(), counts.end()) - counts.begin());
  int coldest = 0;
  long long least = -1;
  for (int r = 0; r < R; ++r) {
    long long load = 0;
    for (const int e : p.held(r)) load += counts[std::size_t(e)];
    if (p.local_index(r, hot) < 0 && (least < 0 || load < least)) least = load, coldest = r;
  }
  if (p.replicate(hot, coldest).ok())
    note += ", expert " + std::to_string(hot) + " (hottest: " + std::to_string(counts[std::size_t(hot)]) + " assignments) also on rank " +
            std::to_string(coldest);
  return p;
}

void report(int R, const std::string& note, const std::vector<int>& first, const std::vector<ep::EpStats>& stats, bool same) {
  std::printf("\nranks %d : placement %s\n", R, note.c_str());
  std::printf("  rank  tokens  rows out  rows in  KiB out  KiB in  remote asg  max load\n");
  long long rows = 0, remote = 0;
  for (int r = 0; r < R; ++r) {
    const ep::EpStats& s = stats[std::size_t(r)];
    const long long max_load = s.expert_load.empty() ? 0 : *std::max_element(s.expert_load.begin(), s.expert_load.end());
    std::printf("  %4d  %6d  %8lld  %7lld  %7.1f  %6.1f  %10lld  %8lld\n", r, first[std::size_t(r) + 1] - first[std::size_t(r)],
                s.rows_sent, s.rows_received, double(s.bytes_sent) / 1024.0, double(s.bytes_received) / 1024.0, s.assignments_remote,
                max_load);
    rows += s.rows_sent, remote += s.assignments_remote;
  }
  std::printf("  rows sent %lld for %lld remote assignments (%.0f%% fewer: a row goes once per destination rank)\n", rows, remote,
              remote > 0 ? 100.0 * double(remote - rows) / double(remote) : 0.0);
  std::printf("  check : y of every token bitwise equal to the single-rank layer: %s\n", same ? "yes" : "NO");
}

/// After a step on every rank: a rank's error ends the example (false); else the check of y
/// against one rank, the report, and `pass` updated.
bool settle(int R, const std::string& note, const std::vector<int>& first, const std::vector<ds::Status>& status,
            const std::vector<ep::EpStats>& stats, const std::vector<bf16>& y, const std::vector<bf16>& ref, bool& pass) {
  for (const ds::Status& s : status)
    if (!s.ok()) return std::printf("error   : %s\n", s.to_string().c_str()), false;
  const bool same = std::memcmp(y.data(), ref.data(), y.size() * sizeof(bf16)) == 0;
  report(R, note, first, stats, same);
  pass = pass && same;
  return true;
}

std::vector<int> shares(int tokens, int R) {
  std::vector<int> first(std::size_t(R) + 1);
  for (int r = 0; r <= R; ++r) first[std::size_t(r)] = int((long long)tokens * r / R);
  return first;
}

/// Host executor: single rank, then each rank count over threads.
int run_host(const Options& o) {
  std::mt19937_64 rng(17);
  const Model m({256, 128, 256, o.tokens}, rng);
  std::vector<bf16> x(std::size_t(o.tokens) * m.dims.hidden);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& v : x) v = ds::value_from_float<bf16>(u(rng));
  std::vector<bf16> ref(x.size()), e1, e3, e2;
  std::vector<int> counts(kE);
  m.experts({}, e1, e3, e2);
  moe::LayerOutputs<bf16> ro;
  ro.y = ref.data();
  ro.expert_counts = counts.data();
  const ds::Status st =
      moe::host::run_layer<Gate>(m.dims, params(), {},
                                 m.view(m.wg.data(), e1.data(), e3.data(), e2.data(), m.s1.data(), m.s3.data(), m.s2.data()),
                                 moe::LayerInputs<bf16>{x.data(), o.tokens, 0, nullptr}, ro);
  if (!st.ok()) return std::printf("error   : %s\n", st.to_string().c_str()), 1;
  bool pass = true;
  for (const int R : o.ranks) {
    std::string note;
    const ep::Placement pl = place(R, counts, note);
    const std::vector<int> first = shares(o.tokens, R);
    std::vector<bf16> y(x.size());
    std::vector<ep::EpStats> stats(static_cast<std::size_t>(R));
    std::vector<ds::Status> status(static_cast<std::size_t>(R));
    ep::InProcessGroup group(R);
    std::vector<std::thread> threads;
    for (int r = 0; r < R; ++r)
      threads.emplace_back([&, r] {
        std::vector<bf16> r1, r3, r2;
        m.experts(pl.held(r), r1, r3, r2);
        const auto w = m.view(m.wg.data(), r1.data(), r3.data(), r2.data(), m.s1.data(), m.s3.data(), m.s2.data());
        const int t0 = first[std::size_t(r)], n = first[std::size_t(r) + 1] - t0;
        moe::LayerOutputs<bf16> out;
        out.y = y.data() + std::size_t(t0) * m.dims.hidden;
        auto tr = group.transport(r);
        status[std::size_t(r)].assign(
            ep::run_host_layer<Gate>(tr, pl, m.dims, params(), {}, w,
                                     moe::LayerInputs<bf16>{x.data() + std::size_t(t0) * m.dims.hidden, n, 0, nullptr}, out,
                                     &stats[std::size_t(r)]));
      });
    for (auto& t : threads) t.join();
    if (!settle(R, note, first, status, stats, y, ref, pass)) return 1;
  }
  std::printf("\nresult  : %s\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}

#if DEEPSHOCK_HAS_KERNELS
namespace rt = deepshock::rt;
using L = moe::Layer<Gate, X, bf16>;

/// The device executor (simulator or GPU): single-rank moe::Layer::run, then ep::DeviceEp ranks.
int run_device(const Options& o, const char* where) {
  std::mt19937_64 rng(17);
  const moe::LayerDims dims = DEEPSHOCK_SIM ? moe::LayerDims{64, 48, 64, o.tokens} : moe::LayerDims{256, 128, 256, o.tokens};
  const Model m(dims, rng);
  std::vector<bf16> x(std::size_t(o.tokens) * dims.hidden);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& v : x) v = ds::value_from_float<bf16>(u(rng));
  auto up = [](const std::vector<bf16>& h, rt::DeviceBuffer<bf16>& d) {
    return d.allocate(std::max<std::size_t>(h.size(), 1)).ok() && d.copy_from_host(h.data(), h.size()).ok();
  };
  // One rank's device weights (all experts when `held` is empty).
  struct Dev {
    rt::DeviceBuffer<bf16> b[7];
    moe::LayerWeights<bf16, X> w;
  };
  auto device_weights = [&](const std::vector<int>& held, Dev& d) {
    std::vector<bf16> e1, e3, e2;
    m.experts(held, e1, e3, e2);
    const std::vector<bf16>* h[] = {&m.wg, &e1, &e3, &e2, &m.s1, &m.s3, &m.s2};
    for (int i = 0; i < 7; ++i)
      if (!up(*h[i], d.b[i])) return false;
    d.w = m.view(d.b[0].data(), d.b[1].data(), d.b[2].data(), d.b[3].data(), d.b[4].data(), d.b[5].data(), d.b[6].data());
    return rt::device_synchronize().ok();
  };
  std::vector<bf16> ref(x.size());
  std::vector<int> counts(kE);
  {
    L layer(dims, params(), ep::batch_invariant());  // the router as DeviceEp's home layer routes
    Dev d;
    rt::DeviceBuffer<bf16> dx, dy;
    rt::DeviceBuffer<int> dc;
    rt::DeviceBuffer<unsigned char> ws;
    if (!layer.status().ok() || !device_weights({}, d) || !up(x, dx) || !dy.allocate(x.size()).ok() || !dc.allocate(kE).ok() ||
        !ws.allocate(layer.workspace_bytes()).ok())
      return std::printf("error   : device setup failed\n"), 1;
    moe::LayerOutputs<bf16> out;
    out.y = dy.data();
    out.expert_counts = dc.data();
    const ds::Status st = layer.run(moe::LayerInputs<bf16>{dx.data(), o.tokens, 0, nullptr}, d.w, out, ws.data(), ws.size(), nullptr);
    if (!st.ok() || !dy.copy_to_host(ref.data(), ref.size()).ok() || !dc.copy_to_host(counts.data(), kE).ok() ||
        !rt::device_synchronize().ok())
      return std::printf("error   : %s\n", st.to_string().c_str()), 1;
  }
  std::printf("ep      : DeepSeek-V2-Lite routing (64 experts, top-6) + shared expert at hidden %d, bf16, %d tokens, %s\n", dims.hidden,
              o.tokens, where);
  bool pass = true;
  for (const int R : o.ranks) {
    std::string note;
    const ep::Placement pl = place(R, counts, note);
    const std::vector<int> first = shares(o.tokens, R);
    std::vector<bf16> y(x.size());
    std::vector<ep::EpStats> stats(static_cast<std::size_t>(R));
    std::vector<ds::Status> status(static_cast<std::size_t>(R));
    ep::InProcessGroup group(R, std::chrono::milliseconds(60000), ep::device_copy);
    std::vector<std::thread> threads;
    for (int r = 0; r < R; ++r)
      threads.emplace_back([&, r] {
        auto tr = group.transport(r);
        const int t0 = first[std::size_t(r)], n = first[std::size_t(r) + 1] - t0;
        Dev d;
        rt::DeviceBuffer<bf16> dx, dy;
        const std::vector<bf16> mine(x.begin() + std::ptrdiff_t(t0) * dims.hidden, x.begin() + std::ptrdiff_t(t0 + n) * dims.hidden);
        ep::DeviceEp<L, ep::InProcessTransport> rank(tr, pl, dims, params());
        ds::Status st = rank.status();
        if (st.ok() && !(device_weights(pl.held(r), d) && up(mine, dx) && dy.allocate(std::max<std::size_t>(mine.size(), 1)).ok()))
          st.assign(ds::Status::runtime_error("device setup failed"));
        if (!st.ok()) {
          tr.abort(st);
        } else {
          moe::LayerOutputs<bf16> out;
          out.y = dy.data();
          st.assign(rank.run(moe::LayerInputs<bf16>{dx.data(), n, 0, nullptr}, d.w, out, nullptr, &stats[std::size_t(r)]));
          if (st.ok() && n > 0) {
            const ds::Status c = dy.copy_to_host(y.data() + std::size_t(t0) * dims.hidden, mine.size());
            st.assign(c.ok() ? rt::device_synchronize() : c);
          }
        }
        status[std::size_t(r)].assign(st);
      });
    for (auto& t : threads) t.join();
    if (!settle(R, note, first, status, stats, y, ref, pass)) return 1;
  }
  std::printf("\nresult  : %s\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
#endif

int usage() {
  std::printf("usage: ep [--ranks 2,4,8] [--tokens N] [--executor auto|host|sim|gpu]\n");
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ranks" && i + 1 < argc) {
      o.ranks.clear();
      std::stringstream ss(argv[++i]);
      for (std::string v; std::getline(ss, v, ',');) {
        const int r = std::atoi(v.c_str());
        if (r < 1 || r > 64) return usage();
        o.ranks.push_back(r);
      }
      if (o.ranks.empty()) return usage();
    } else if (a == "--tokens" && i + 1 < argc) {
      o.tokens = std::atoi(argv[++i]);
      if (o.tokens < 1 || o.tokens > 4096) return usage();
    } else if (a == "--executor" && i + 1 < argc) {
      o.executor = argv[++i];
    } else {
      return usage();
    }
  }
#if DEEPSHOCK_SIM
  if (o.executor == "auto") o.executor = "host";
  if (o.executor == "sim") return run_device(o, "ep::DeviceEp (the device kernels in the CPU simulator)");
  if (o.executor == "gpu") return std::printf("ep: --executor gpu runs in ep_gpu\n"), 2;
#elif DEEPSHOCK_HAS_KERNELS
  const bool device = rt::device_available();
  if (o.executor == "auto") o.executor = device ? "gpu" : "host";
  if (o.executor == "gpu") {
    if (!device) return std::printf("ep: no CUDA device on this machine\n"), 77;
    return run_device(o, "ep::DeviceEp on the GPU (ranks as threads sharing it)");
  }
  if (o.executor == "sim") return std::printf("ep: --executor sim runs in ep_sim\n"), 2;
#endif
  if (o.executor != "host") return usage();
  std::printf("ep      : DeepSeek-V2-Lite routing (64 experts, top-6) + shared expert at hidden 256, bf16, %d tokens, "
              "the exact host executor (ep::run_host_layer)\n",
              o.tokens);
  return run_host(o);
}
