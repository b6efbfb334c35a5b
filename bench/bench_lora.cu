// bench/bench_lora.cu — LoRA through the MoE layer (nvcc, Google Benchmark, CUDA-event manual
// time, JSON-friendly counters): Layer::run of DeepSeek-V2-Lite's layer (64 experts top-6, 2
// shared experts, H 2048, I 1408) serving LoRA adapters on every expert matrix (routed and
// shared), against the same layer without them, over bf16 and int4 base weights.
//
//   base/<model>/<base>/T:n                     moe::Expert<Codec>: the plain layer (the baseline)
//   lora/<model>/<base>/r:R/adapters:N/T:n      moe::Expert<Codec, lora::LoRA<64>>: N adapters of
//                                               rank R, token t on adapter t % N
//   lora/<model>/<base>/mixed_8_64/adapters:8/T:n  eight adapters, ranks 8, 64, 8, 64, ...
// for base in {bf16, uint4b8_g128}, R in {8, 16, 64}, N in {1, 8}, T in {1, 32, 4096}. One
// compile-time capacity (64) serves every rank: each adapter's run-time rank decides its cost.
// Targets (H200): rank-8 overhead <= 5 % of base/ at decode (T = 1, 32), <= 15 % at rank 64;
// adapters:8 <= 1.1 x adapters:1 at the same rank; mixed_8_64 near the mean of r:8 and r:64 at 8
// adapters, not r:64's time.
//
// Bytes: base/'s (bench_moe.cu) plus each distinct (expert, adapter) pair's A and B of the three
// matrices, 2r (3H + 3I) bytes, and each distinct adapter's shared A and B, 2r (3H + 3Is) bytes
// (the pairs of this routing, counted on the host after the warm-up run). FLOPs: base/'s plus
// 2r (3H + 3I) per routed assignment with an adapter and 2r (3H + 3Is) per token (shrink and
// expand). Adapter weights: A ~ U(+-1/sqrt(in)), B ~ U(+-1/sqrt(r)) from the same hash as the
// base weights. Without a GPU the binary prints one line and exits 0.
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "moe_bench.cuh"

namespace {

constexpr int kCapacity = 64;
using Int4 = deepshock::quant::Int4Group<128>;

/// The adapters of a LoRA MoeBench on the device: per adapter and matrix A and B, the table of
/// their pointers, and the tokens' ids.
struct DeviceAdapters {
  std::vector<rt::DeviceBuffer<bf16>> bufs;
  rt::DeviceBuffer<ds::lora::AdapterRef<bf16>> table;
  rt::DeviceBuffer<int> ids;
  std::vector<int> ranks, host_ids;
};

/// Makes `ranks.size()` adapters for model M (every matrix, routed and shared) and token ids
/// t % count, and points b's weights and inputs at them.
template <class M, class Bench>
Status make_adapters(Bench& b, const std::vector<int>& ranks, DeviceAdapters& d) {
  constexpr long long E = M::Gate::kExperts, H = M::kHidden, I = M::kInter, Is = M::kShared;
  std::vector<ds::lora::AdapterRef<bf16>> refs;
  d.ranks = ranks;
  d.bufs.reserve(ranks.size() * 2 * ds::lora::kMatrices);
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    ds::lora::AdapterRef<bf16> r;
    r.rank = ranks[i];
    r.scaling = ds::lora::scaling(2.0 * ranks[i], ranks[i], false);
    for (int m = 0; m < ds::lora::kMatrices; ++m) {
      const auto mat = static_cast<ds::quant::Matrix>(m);
      const bool sh = m >= static_cast<int>(ds::quant::Matrix::shared_w1);
      if (sh && Is == 0) continue;
      long long in = 0, out = 0;
      ds::lora::matrix_shape(mat, H, I, Is, in, out);
      const std::size_t ex = sh ? 1 : static_cast<std::size_t>(E), rk = static_cast<std::size_t>(ranks[i]);
      const std::uint32_t seed = 1000 + 16 * static_cast<std::uint32_t>(i) + static_cast<std::uint32_t>(m);
      d.bufs.emplace_back();
      DEEPSHOCK_RETURN_IF_ERROR(d.bufs.back().allocate(ex * rk * static_cast<std::size_t>(in)));
      DEEPSHOCK_RETURN_IF_ERROR(fill(d.bufs.back(), seed, 1.0f / std::sqrt(static_cast<float>(in)), b.s()));
      r.a[m] = d.bufs.back().data();
      d.bufs.emplace_back();
      DEEPSHOCK_RETURN_IF_ERROR(d.bufs.back().allocate(ex * static_cast<std::size_t>(out) * rk));
      DEEPSHOCK_RETURN_IF_ERROR(fill(d.bufs.back(), seed + 500, 1.0f / std::sqrt(static_cast<float>(rk)), b.s()));
      r.b[m] = d.bufs.back().data();
    }
    refs.push_back(r);
  }
  d.host_ids.resize(static_cast<std::size_t>(b.T));
  for (int t = 0; t < b.T; ++t) d.host_ids[static_cast<std::size_t>(t)] = t % static_cast<int>(ranks.size());
  DEEPSHOCK_RETURN_IF_ERROR(d.table.allocate(refs.size()));
  DEEPSHOCK_RETURN_IF_ERROR(d.table.copy_from_host(refs.data(), refs.size(), b.s()));
  DEEPSHOCK_RETURN_IF_ERROR(d.ids.allocate(d.host_ids.size()));
  DEEPSHOCK_RETURN_IF_ERROR(d.ids.copy_from_host(d.host_ids.data(), d.host_ids.size(), b.s()));
  DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(b.s()));  // the host vectors are copied
  b.w.adapter = {d.table.data(), static_cast<int>(refs.size())};
  b.adapter_ids = d.ids.data();
  return Status::success();
}

/// The adapters' extra bytes and FLOPs for the routing of b's warm-up run (see the file comment).
template <class M, class Bench>
Status adapter_cost(const Bench& b, const DeviceAdapters& d, double& bytes, double& flops) {
  constexpr int E = M::Gate::kExperts, K = M::Gate::kTopK;
  constexpr double H = M::kHidden, I = M::kInter, Is = M::kShared;
  std::vector<int> ids(static_cast<std::size_t>(b.T) * K);
  DEEPSHOCK_RETURN_IF_ERROR(b.ids.copy_to_host(ids.data(), ids.size(), b.s()));
  DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(b.s()));
  const std::size_t A = d.ranks.size();
  std::vector<char> pair(static_cast<std::size_t>(E) * A, 0), used(A, 0);
  bytes = flops = 0.0;
  for (int t = 0; t < b.T; ++t) {
    const int a = d.host_ids[static_cast<std::size_t>(t)];
    const double r = d.ranks[static_cast<std::size_t>(a)];
    if (!used[static_cast<std::size_t>(a)]) {
      used[static_cast<std::size_t>(a)] = 1;
      bytes += Is > 0 ? 2.0 * r * (3.0 * H + 3.0 * Is) : 0.0;
    }
    flops += Is > 0 ? 2.0 * r * (3.0 * H + 3.0 * Is) : 0.0;
    for (int j = 0; j < K; ++j) {
      const int e = ids[static_cast<std::size_t>(t) * K + j];
      if (e < 0 || e >= E) continue;
      char& seen = pair[static_cast<std::size_t>(e) * A + static_cast<std::size_t>(a)];
      if (!seen) {
        seen = 1;
        bytes += 2.0 * r * (3.0 * H + 3.0 * I);
      }
      flops += 2.0 * r * (3.0 * H + 3.0 * I);
    }
  }
  return Status::success();
}

std::string base_name(bool int4) { return int4 ? Int4::kName : "bf16"; }

/// base/<model>/<base>: the plain layer.
template <class M, class Codec>
void BM_base(benchmark::State& state) {
  state.SetLabel(model_label<M>() + " experts " + base_name(!Codec::kIdentity) + ", no adapters");
  MoeBench<M, moe::GemmTuning, Codec> b(static_cast<int>(state.range(0)));
  if (!bench::ok_or_skip(state, b.init())) return;
  if (!time_loop(state, b, [&]() -> Status { return b.run(); })) return;
  b.counters(state, b.bytes(true), b.flops(true));
}

/// lora/<model>/<base>/...: the layer serving the adapters of ranks `ranks` (one per adapter).
template <class M, class Codec>
void BM_lora(benchmark::State& state, std::vector<int> ranks) {
  std::string rs;
  for (int r : ranks) {
    if (!rs.empty()) rs += ',';
    rs += std::to_string(r);
  }
  state.SetLabel(model_label<M>() + " experts " + base_name(!Codec::kIdentity) + ", LoRA ranks " + rs);
  MoeBench<M, moe::GemmTuning, Codec, ds::lora::LoRA<kCapacity>> b(static_cast<int>(state.range(0)));
  DeviceAdapters d;
  if (!bench::ok_or_skip(state, b.init()) || !bench::ok_or_skip(state, make_adapters<M>(b, ranks, d))) return;
  double extra_bytes = 0.0, extra_flops = 0.0;
  if (!bench::ok_or_skip(state, adapter_cost<M>(b, d, extra_bytes, extra_flops))) return;
  if (!time_loop(state, b, [&]() -> Status { return b.run(); })) return;
  b.counters(state, b.bytes(true) + extra_bytes, b.flops(true) + extra_flops);
  state.counters["adapters"] = static_cast<double>(ranks.size());
}

template <class M, class Codec>
void register_base(bool int4) {
  const std::string pre = std::string(M::kName) + "/" + base_name(int4);
  auto* bm = benchmark::RegisterBenchmark(("base/" + pre).c_str(), BM_base<M, Codec>);
  bm->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
  for (const int t : {1, 32, 4096}) bm->Arg(t);
  for (const int r : {8, 16, 64})
    for (const int n : {1, 8}) {
      const std::string name = "lora/" + pre + "/r:" + std::to_string(r) + "/adapters:" + std::to_string(n);
      auto* l = benchmark::RegisterBenchmark(name.c_str(), BM_lora<M, Codec>, std::vector<int>(static_cast<std::size_t>(n), r));
      l->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
      for (const int t : {1, 32, 4096}) l->Arg(t);
    }
  auto* mx = benchmark::RegisterBenchmark(("lora/" + pre + "/mixed_8_64/adapters:8").c_str(), BM_lora<M, Codec>,
                                          std::vector<int>{8, 64, 8, 64, 8, 64, 8, 64});
  mx->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
  for (const int t : {1, 32, 4096}) mx->Arg(t);
}

[[maybe_unused]] const bool kRegistered = [] {
  register_base<DeepSeekV2Lite, ds::quant::None>(false);
  register_base<DeepSeekV2Lite, Int4>(true);
  return true;
}();

}  // namespace

int main(int argc, char** argv) { return moe_bench_main(argc, argv); }
