// bench_cpu — the MoE layer's experts on the CPU: the fast executor (cpu/layer.hpp, oneDNN GEMMs)
// against the exact one (moe::host::run_layer_routed), on published shapes, bf16 and fp32, one
// and two threads; and the machine's read bandwidth, the decode roofline.
//
// Rows:
//   BM_ReadBandwidth/threads           sums 1 GiB of floats: the memory read bandwidth (B/s)
//   BM_Layer<Model, T>/exec/tokens/threads   exec 0 = exact, 1 = fast; run_routed with a fresh
//       balanced routing per iteration (64 prepared routings in turn, so that the experts a
//       decode step reads are mostly not in cache). Counters: FLOP/s (2 x 3 x H x I per
//       assignment, plus the shared expert per token), weight_B/s (bytes of the experts touched,
//       shared included, per second) and pct_read_bw (weight_B/s against BM_ReadBandwidth's
//       figure for the same thread count, measured once per process).
//   BM_LayerInt8<Model, Codec>/exec/tokens/threads   the same in bf16 with int8 experts:
//       quant::Int8Channel (W8A16) and quant::Int8ChannelA8 (W8A8 on the int8 instructions);
//       weight_B/s counts the int8 bytes and scales.
// The exact executor runs up to 512 tokens (beyond, one iteration takes minutes), 32 for int8.
//
//   bench_cpu --benchmark_out=cpu.json --benchmark_out_format=json
//   bench_cpu --benchmark_filter='Small'      # the CI smoke rows
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "deepshock/cpu/layer.hpp"
#include "deepshock/models/presets.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "deepshock/quant/int8.hpp"

namespace {
namespace ds = deepshock;
namespace moe = deepshock::moe;

/// A small shape for CI smoke runs (seconds, not minutes).
struct Small {
  static constexpr const char* kName = "Small";
  static constexpr int kExperts = 8, kTopK = 2, kHidden = 256, kInter = 128, kShared = 128;
};
/// DeepSeek-V2-Lite's MoE layer: 64 experts, top-6, H 2048, I 1408, two shared experts (2816).
struct V2Lite {
  using M = ds::models::DeepSeekV2Lite;
  static constexpr const char* kName = "DeepSeek-V2-Lite";
  static constexpr int kExperts = M::Gate::kExperts, kTopK = M::Gate::kTopK, kHidden = M::kHidden, kInter = M::kInter, kShared = M::kShared;
};

/// Read bandwidth (bytes/s) of `threads` threads summing a buffer far larger than the caches.
double measure_read_bandwidth(int threads, benchmark::State* state = nullptr) {
  static std::map<int, double> measured;
  if (state == nullptr && measured.count(threads) != 0) return measured[threads];
  const std::size_t n = (std::size_t{1} << 30) / sizeof(float);
  static std::vector<float> buf(n, 1.0f);
  double best = 0.0;
  for (int rep = 0; rep < (state == nullptr ? 3 : 1); ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0.0f;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static)
#endif
    for (std::size_t blk = 0; blk < n / 4096; ++blk) {
      float acc[16] = {};
      const float* p = buf.data() + blk * 4096;
      for (std::size_t i = 0; i < 4096; i += 16)
        for (int l = 0; l < 16; ++l) acc[l] += p[i + l];
      for (float a : acc) total += a;
    }
    benchmark::DoNotOptimize(total);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (state != nullptr) state->SetIterationTime(s);
    best = std::max(best, static_cast<double>(n * sizeof(float)) / s);
  }
  if (state == nullptr) measured[threads] = best;
  return best;
}

void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  for (auto _ : state) measure_read_bandwidth(threads, &state);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * (std::int64_t{1} << 30));
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);

/// One model's weights in T, drawn once per process and type.
template <class Shape, class T>
struct Weights {
  std::vector<T> w1, w3, w2, s1, s3, s2;
  Weights() {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> d(-0.02f, 0.02f);
    const std::size_t per = static_cast<std::size_t>(Shape::kInter) * Shape::kHidden,
                      sh = static_cast<std::size_t>(Shape::kShared) * Shape::kHidden;
    auto fill = [&](std::vector<T>& v, std::size_t n) {
      v.resize(n);
      for (T& x : v) x = ds::value_from_float<T>(d(rng));
    };
    fill(w1, per * Shape::kExperts);
    fill(w3, per * Shape::kExperts);
    fill(w2, per * Shape::kExperts);
    fill(s1, sh);
    fill(s3, sh);
    fill(s2, sh);
  }
  static const Weights& get() {
    static const Weights w;
    return w;
  }
  moe::LayerWeights<T, moe::Expert<>> view() const {
    moe::LayerWeights<T, moe::Expert<>> w;
    w.w1 = w1.data();
    w.w3 = w3.data();
    w.w2 = w2.data();
    if (Shape::kShared > 0) {
      w.shared_w1 = s1.data();
      w.shared_w3 = s3.data();
      w.shared_w2 = s2.data();
    }
    return w;
  }
};

/// DS_BENCH_GEMV_ROWS=N: the fast executor's gemv_max_rows (default: the library's), for comparisons.
int gemv_rows() {
  const char* v = std::getenv("DS_BENCH_GEMV_ROWS");
  return v != nullptr ? std::atoi(v) : moe::cpu::kDefaultGemvRows;
}

/// The model's weights quantized by quant::Int8Channel's quantizer (the same weights for both
/// int8 codecs).
template <class Shape>
struct Int8Weights {
  std::vector<std::int8_t> q[6];
  std::vector<float> scale[6];
  Int8Weights() {
    const Weights<Shape, float>& f = Weights<Shape, float>::get();
    const std::vector<float>* src[6] = {&f.w1, &f.w3, &f.w2, &f.s1, &f.s3, &f.s2};
    const long long cols[6] = {Shape::kHidden, Shape::kHidden, Shape::kInter, Shape::kHidden, Shape::kHidden, Shape::kShared};
    for (int i = 0; i < 6; ++i) {
      const long long rows = static_cast<long long>(src[i]->size()) / cols[i];
      q[i].resize(src[i]->size());
      scale[i].resize(static_cast<std::size_t>(rows));
      if (rows > 0 && !ds::quant::quantize_int8_channel(src[i]->data(), rows, cols[i], cols[i], q[i].data(), cols[i], scale[i].data()).ok())
        std::abort();
    }
  }
  static const Int8Weights& get() {
    static const Int8Weights w;
    return w;
  }
  template <class T, class Codec>
  moe::LayerWeights<T, moe::Expert<Codec>> view() const {
    moe::LayerWeights<T, moe::Expert<Codec>> w;
    w.w1 = q[0].data();
    w.w3 = q[1].data();
    w.w2 = q[2].data();
    w.codec = {scale[0].data(), scale[1].data(), scale[2].data(), nullptr, nullptr, nullptr};
    if (Shape::kShared > 0) {
      w.shared_w1 = q[3].data();
      w.shared_w3 = q[4].data();
      w.shared_w2 = q[5].data();
      w.codec.shared_w1_scale = scale[3].data();
      w.codec.shared_w3_scale = scale[4].data();
      w.codec.shared_w2_scale = scale[5].data();
    }
    return w;
  }
};

/// The layer of expert type X on `Shape` in T, run by the exact or the fast executor.
template <class Shape, class T, class X>
void run_layer_bench(benchmark::State& state, const moe::LayerWeights<T, X>& w, double bytes_per_weight, const std::string& what) {
  const bool fast = state.range(0) != 0;
  const int tokens = static_cast<int>(state.range(1)), threads = static_cast<int>(state.range(2));
  constexpr int E = Shape::kExperts, k = Shape::kTopK, H = Shape::kHidden, I = Shape::kInter, Is = Shape::kShared;
  const moe::LayerDims d{H, I, Is, tokens};
  std::mt19937_64 rng(11);
  std::vector<T> x(static_cast<std::size_t>(tokens) * H), y(x.size());
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (T& v : x) v = ds::value_from_float<T>(u(rng));
  // Balanced routings: each token k distinct experts, weights 1 / k; 64 for decode sizes (so that
  // the experts of one step are mostly not in cache from the last), 4 above 64 tokens (every
  // expert is touched anyway).
  const int kRoutings = tokens <= 64 ? 64 : 4;
  std::vector<std::vector<int>> ids(static_cast<std::size_t>(kRoutings));
  std::vector<int> touched(static_cast<std::size_t>(kRoutings), 0);
  std::vector<int> perm(E);
  for (int r = 0; r < kRoutings; ++r) {
    std::vector<char> used(E, 0);
    for (int t = 0; t < tokens; ++t) {
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int j = 0; j < k; ++j) {
        ids[r].push_back(perm[j]);
        used[perm[j]] = 1;
      }
    }
    touched[r] = static_cast<int>(std::count(used.begin(), used.end(), 1));
  }
  const std::vector<float> wts(static_cast<std::size_t>(tokens) * k, 1.0f / k);
  const moe::LayerInputs<T> in{x.data(), tokens, 0, nullptr};
  moe::LayerOutputs<T> out;
  out.y = y.data();
  std::unique_ptr<moe::cpu::Executor<T, X>> ex;
  if (fast) {
    ex = std::make_unique<moe::cpu::Executor<T, X>>(d, E, k, moe::cpu::ExecutorOptions{threads, gemv_rows()});
    if (!ex->status().ok()) {
      state.SkipWithError(ex->status().to_string().c_str());
      return;
    }
    // Creates the oneDNN primitives of every routing's shapes: a serving loop has them cached
    // (one per distinct expert row count and matrix), and creating one costs milliseconds.
    for (int r = 0; r < kRoutings; ++r) (void)ex->run_routed(w, in, ids[r].data(), wts.data(), out);
  }
#if defined(_OPENMP)
  omp_set_num_threads(threads);  // the exact executor uses OpenMP's default team
#endif
  const double read_bw = measure_read_bandwidth(threads);
  double bytes = 0.0, seconds = 0.0;
  int r = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const ds::Status st = fast ? ex->run_routed(w, in, ids[r].data(), wts.data(), out)
                               : moe::host::run_layer_routed(d, E, k, w, in, ids[r].data(), wts.data(), out);
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(y.data());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    bytes += (static_cast<double>(touched[r]) * 3 * H * I + 3.0 * H * Is) * bytes_per_weight;
    r = (r + 1) % kRoutings;
  }
  const double flop = 2.0 * 3 * H * (static_cast<double>(tokens) * k * I + static_cast<double>(tokens) * Is);
  state.counters["FLOP/s"] = benchmark::Counter(flop * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["weight_B/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsRate);
  state.counters["pct_read_bw"] = seconds > 0.0 ? 100.0 * bytes / seconds / read_bw : 0.0;
  state.SetLabel(std::string(Shape::kName) + (std::is_same_v<T, float> ? " fp32 " : " bf16 ") + what + (fast ? "fast" : "exact"));
}

template <class Shape, class T>
void BM_Layer(benchmark::State& state) {
  run_layer_bench<Shape, T>(state, Weights<Shape, T>::get().view(), sizeof(T), "");
}

template <class Shape, class Codec>
void BM_LayerInt8(benchmark::State& state) {
  // One byte per weight and a 4-byte scale per row of K = H or I values (about 0.2% more).
  run_layer_bench<Shape, ds::bf16>(state, Int8Weights<Shape>::get().template view<ds::bf16, Codec>(), 1.0 + 4.0 / Shape::kInter,
                                   std::string(Codec::kName) + " ");
}

void layer_args(benchmark::internal::Benchmark* b, const std::vector<int>& tokens, int exact_max) {
  for (int threads : {1, 2})
    for (int t : tokens) {
      if (t <= exact_max) b->Args({0, t, threads});
      b->Args({1, t, threads});
    }
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Layer<Small, ds::bf16>)->Apply([](auto* b) { layer_args(b, {1, 8, 64}, 64); });
BENCHMARK(BM_Layer<Small, float>)->Apply([](auto* b) { layer_args(b, {1, 8, 64}, 64); });
BENCHMARK(BM_Layer<V2Lite, ds::bf16>)->Apply([](auto* b) { layer_args(b, {1, 8, 32, 512, 4096}, 512); });
BENCHMARK(BM_Layer<V2Lite, float>)->Apply([](auto* b) { layer_args(b, {1, 8, 32, 512}, 512); });
BENCHMARK(BM_LayerInt8<Small, ds::quant::Int8ChannelA8>)->Apply([](auto* b) { layer_args(b, {1, 64}, 64); });
BENCHMARK(BM_LayerInt8<V2Lite, ds::quant::Int8Channel>)->Apply([](auto* b) { layer_args(b, {1, 8, 32, 512}, 32); });
BENCHMARK(BM_LayerInt8<V2Lite, ds::quant::Int8ChannelA8>)->Apply([](auto* b) { layer_args(b, {1, 8, 32, 512, 4096}, 32); });

}  // namespace

BENCHMARK_MAIN();
