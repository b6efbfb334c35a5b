// bench/bench_policy.cu — GPU throughput of the logits policies, the discrete privacy noise and the
// selection step (nvcc, Google Benchmark, CUDA-event manual time, JSON-friendly counters).
//
// Shapes: V in {32000 (Llama-2 / Mistral-7B), 128256 (Llama-3), 152064 (Qwen2 / Qwen2.5)} and
// B in {1, 64, 4096} rows, fp32 logits [B, V] row-major. A (B, V) combination is registered only
// when every device buffer of the benchmark, the check-only ones included, fits in 8 GiB; the
// largest here (allow_rep_watermark at B = 4096, V = 152064: 3 * 4BV + 4B ceil(V/32) + 4B bytes,
// about 7.03 GiB) fits, so every combination runs. Below, W = ceil(V / 32).
//
// (a) pipeline/<case>/V:v/B:b — policy::run_pipeline<P>, in place on the logits (one fused pass):
//   allow_rep_watermark  Pipeline<AllowMask, RepetitionPenalty, GreenListWatermark>: allow-mask
//                        int32 words [B, W] (random, ~half allowed), penalty 1.2 over a dense
//                        int32 count table [B, V] (row_stride = V, ~6% of tokens seen),
//                        watermark gamma 0.25, delta 2 keyed on prev_token [B]
//   ban_watermark        Pipeline<TokenBan, GreenListWatermark>: one shared ban mask [W] (~1% of
//                        tokens banned) + the same watermark
//   group_threshold      fair::GroupThreshold, Axis::column: x - thresholds[group[col]], group [V]
//                        in [0, 4), thresholds [4] (the cheapest policy: a near copy, a ceiling
//                        for the fused pass)
//   bytes_per_second, pct_of_bw_roofline   bytes = 8BV: ONE read plus ONE write of the fp32 logits
//   aux_bytes_per_second, aux_pct_of_bw_roofline   aux = 8BV + the policies' own side inputs, each
//                        counted once (compulsory traffic):
//                          allow_rep_watermark  + 4BW (allow mask) + 4BV (counts) + 4B (prev_token)
//                          ban_watermark        + 4W (shared ban mask) + 4B (prev_token)
//                          group_threshold      + 4V (group ids) + 4G (thresholds), G = 4
//   The dense count table doubles as a full second read: allow_rep_watermark moves ~12BV bytes, so
//   its logits-only pct_of_bw_roofline can reach only about 2/3 of what its aux_pct reports.
//
// (b) noise/<type>/<mechanism>/n:n — privacy::add_discrete_{gaussian,laplace}_noise in place on n
//   values, n in {2^20, 2^24}: int64 (values[i] += Z_i, saturating) and float_grid (release on the
//   grid 2^-8 with clamp 64: 2^14 steps). Discrete Gaussian sigma^2 = 100 (sigma = 10), discrete
//   Laplace scale t = 10 (grid steps for float_grid). Each timed iteration uses a fresh stream_id.
//   samples_per_second = n / time; bytes = 16n (int64 read + write) or 8n (float read + write),
//   with pct_of_bw_roofline for reference only: the exact integer samplers (Philox words and
//   rejection loops, noise.hpp) are compute-bound, so samples_per_second is the number to read.
//
// (c) topk/V:v/B:b/k:k and sample/V:v/B:b — policy::topk (k in {1, 8, 32}; ids and values [B, k])
//   and policy::sample (Gumbel-max, ids [B]) on logits ~ U[-8, 8): one block per row.
//   bytes = 4BV + outputs: topk 4BV + 8Bk (int32 ids + fp32 values), sample 4BV + 4B.
//   The selection kernel's work depends on the data (only candidates beating the running k-th
//   best are inserted); the inputs are i.i.d. random, the typical case, not the worst
//   (ascending rows).
//
// Timing and checks (as bench_primitives.cu / bench_router.cu): CUDA events around the work of
// one iteration after an untimed write of twice the L2 size (cold L2: every iteration reads from
// HBM; the flush also keeps launch latency outside the events). Allocation and seeded fills happen
// outside the timed loop; every Status is checked (an error marks the benchmark failed, with its
// message). Before timing, each benchmark runs its call once and compares with the host
// reference, so a wrong kernel is reported as an error and not as a speed:
//   (a) up to 8 rows (first and last included), every column, bit for bit against
//       policy::reference::run_pipeline on the same inputs: first out of place into a NaN-poisoned
//       buffer (an element the kernel skips stays NaN; that buffer is freed before timing), then
//       in place; then 3 untimed warm-up passes.
//   (b) the first min(n, 2^16) values against privacy::reference::add_discrete_*_noise, plus 4096
//       indices spread over [0, n) against the same sampler calls the reference makes (noise.hpp),
//       exactly; then 3 warm-up calls. (In place: there is no separate output to poison.)
//   (c) outputs poisoned (ids -1, values NaN); every row: ids in [0, V) and distinct, values
//       non-increasing; up to 8 rows: ids and values exactly equal to policy::reference::topk, or
//       for sample the Gumbel-max over the same select_score noise (select.hpp) with the row's own
//       index; then 3 warm-up calls.
//
// Without a GPU the binary prints one line and exits 0. Like bench_router.cu, the file also
// compiles in a simulator build, which runs the checks on a machine without a GPU (its times mean
// nothing; no CMake target; keep to small shapes):
//   g++ -x c++ -std=c++20 -O2 -DDEEPSHOCK_SIM=1 -Iinclude -Ibench/support bench/bench_policy.cu
//       -o bench_policy_sim -lbenchmark -lboost_context
//   ./bench_policy_sim --benchmark_filter='V:32000/B:1(/|$)'
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "bench_util.hpp"
#include "deepshock/core/philox.hpp"
#include "deepshock/fair/postprocess.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/policy/pipeline.hpp"
#include "deepshock/policy/reference.hpp"
#include "deepshock/policy/safety.hpp"
#include "deepshock/policy/select.hpp"
#include "deepshock/privacy/add_noise.hpp"
#include "deepshock/privacy/noise.hpp"
#include "deepshock/privacy/reference_noise.hpp"

namespace {
namespace ds = deepshock;
namespace rt = deepshock::rt;
namespace bench = deepshock::bench;
namespace pol = deepshock::policy;
namespace saf = deepshock::safety;
namespace priv = deepshock::privacy;
using ds::Status;

constexpr int kWarmup = 3;
constexpr int kCheckRows = 8;                                    ///< rows compared with the host reference
constexpr double kMaxFootprintBytes = 8.0 * 1024 * 1024 * 1024;  ///< 8 GiB of device buffers per benchmark
constexpr int kVocabs[] = {32000, 128256, 152064};
constexpr int kBatches[] = {1, 64, 4096};
constexpr int kTopKs[] = {1, 8, 32};
#if DEEPSHOCK_SIM
constexpr unsigned kFillBlocks = 16;  // the simulator runs every thread as a fiber
#else
constexpr unsigned kFillBlocks = 2048;
#endif

constexpr std::uint32_t kSeedLogits = 0x1001, kSeedMask = 0x1002, kSeedCounts = 0x1003, kSeedPrev = 0x1004, kSeedBan = 0x1005,
                        kSeedGroups = 0x1006, kSeedGrid = 0x1007;
constexpr std::uint64_t kWatermarkKey = 0x5EC2E7C0FFEEull, kSampleSeed = 0xD1CEull, kNoiseSeed = 0x0B5E55EDull;

const char* vocab_model(int V) {
  switch (V) {
    case 32000: return "Llama-2 / Mistral-7B vocab";
    case 128256: return "Llama-3 vocab";
    case 152064: return "Qwen2.5 vocab";
    default: return "";
  }
}
double mask_words(double V) { return std::ceil(V / 32.0); }

// ---- seeded inputs (the same functors run on the device and, for checks, on the host) -----------
/// Word i of a seeded Philox sequence.
DEEPSHOCK_HOST_DEVICE std::uint32_t seeded_word(unsigned long long i, std::uint32_t seed) {
  const ds::Philox4x32::Counter c{{static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i >> 32), 0u, 0u}};
  const ds::Philox4x32::Key k{{seed, 0xB0CEu}};
  return ds::Philox4x32::generate(c, k)[0];
}
/// scale * U[-1, 1).
struct UniformGen {
  std::uint32_t seed;
  float scale;
  DEEPSHOCK_HOST_DEVICE float operator()(unsigned long long i) const {
    return scale * (2.0f * ds::u32_to_unit_float(seeded_word(i, seed)) - 1.0f);
  }
};
/// Random 32-bit words (allow masks: each bit allowed with probability 1/2).
struct WordGen {
  std::uint32_t seed;
  DEEPSHOCK_HOST_DEVICE std::int32_t operator()(unsigned long long i) const { return static_cast<std::int32_t>(seeded_word(i, seed)); }
};
/// Token counts: 0 with probability 15/16, else 1..3.
struct CountGen {
  std::uint32_t seed;
  DEEPSHOCK_HOST_DEVICE int operator()(unsigned long long i) const {
    const std::uint32_t w = seeded_word(i, seed);
    return (w & 15u) == 0u ? 1 + static_cast<int>((w >> 4) % 3u) : 0;
  }
};
/// Integers in [0, m).
struct BelowGen {
  std::uint32_t seed;
  std::uint32_t m;
  DEEPSHOCK_HOST_DEVICE int operator()(unsigned long long i) const { return static_cast<int>(seeded_word(i, seed) % m); }
};
/// int64 counts to be noised: (i mod 2001) - 1000.
struct PatternGen {
  DEEPSHOCK_HOST_DEVICE std::int64_t operator()(unsigned long long i) const { return static_cast<std::int64_t>(i % 2001u) - 1000; }
};

template <class T, class Gen>
DEEPSHOCK_KERNEL void fill_kernel(T* x, long long n, Gen gen) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] = gen(static_cast<unsigned long long>(i));
}
template <class T, class Gen>
Status fill(rt::DeviceBuffer<T>& buf, Gen gen, rt::stream_t s) {
  return ds::launch(fill_kernel<T, Gen>, {dim3(kFillBlocks), dim3(256), 0, s}, buf.data(), static_cast<long long>(buf.size()), gen);
}
template <class T>
Status upload(rt::DeviceBuffer<T>& buf, const std::vector<T>& h, rt::stream_t s) {
  DEEPSHOCK_RETURN_IF_ERROR(buf.allocate(h.size()));
  return buf.copy_from_host(h.data(), h.size(), s);
}

/// Copies rows `rows` of a row-major device array of `width` columns, packed, into `dst`; waits.
template <class T>
Status download_rows(const T* src, std::size_t width, const std::vector<int>& rows, std::vector<T>& dst, rt::stream_t s) {
  dst.resize(rows.size() * width);
  for (std::size_t i = 0; i < rows.size(); ++i)
    DEEPSHOCK_RETURN_IF_ERROR(rt::memcpy_async(dst.data() + i * width, src + static_cast<std::size_t>(rows[i]) * width, sizeof(T) * width,
                                               rt::Copy::device_to_host, s));
  return rt::stream_synchronize(s);
}
template <class T>
Status download_all(const rt::DeviceBuffer<T>& buf, std::vector<T>& dst, rt::stream_t s) {
  dst.resize(buf.size());
  DEEPSHOCK_RETURN_IF_ERROR(buf.copy_to_host(dst.data(), dst.size(), s));
  return rt::stream_synchronize(s);
}

/// Rows compared with the reference: up to kCheckRows, first and last included.
std::vector<int> sampled_rows(int B) {
  const int n = std::min(B, kCheckRows);
  std::vector<int> r(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) r[static_cast<std::size_t>(i)] = n == 1 ? 0 : static_cast<int>(static_cast<long long>(i) * (B - 1) / (n - 1));
  return r;
}

std::string float_text(float x) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &x, sizeof bits);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g (0x%08x)", static_cast<double>(x), static_cast<unsigned>(bits));
  return buf;
}

/// Empty when got and want (packed rows `rows` of width V) are equal bit for bit.
std::string compare_rows_bitwise(const std::vector<float>& got, const std::vector<float>& want, const std::vector<int>& rows, int V,
                                 const char* what) {
  for (std::size_t i = 0; i < want.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      const std::size_t r = i / static_cast<std::size_t>(V), c = i % static_cast<std::size_t>(V);
      return std::string(what) + ": row " + std::to_string(rows[r]) + " column " + std::to_string(c) + " is " + float_text(got[i]) +
             ", reference " + float_text(want[i]);
    }
  return "";
}

using bench::GpuContext;

/// Runs `work` kWarmup times and waits for it.
template <class Work>
Status warm_up(Work& work, rt::stream_t s) {
  for (int i = 0; i < kWarmup; ++i) DEEPSHOCK_RETURN_IF_ERROR(work());
  return rt::stream_synchronize(s);
}

/// Marks the benchmark failed with `what: error` when `error` is not empty; true when it is.
bool check_passed(benchmark::State& state, const std::string& error, const char* what) {
  if (error.empty()) return true;
  state.SkipWithError((std::string(what) + ": " + error).c_str());
  return false;
}

/// A second bytes/s counter (and its % of the HBM roofline), as set_roofline_counters does.
void set_aux_counters(benchmark::State& state, double aux_bytes_per_iter, double measured_seconds) {
  state.counters["aux_bytes_per_second"] = benchmark::Counter(aux_bytes_per_iter, benchmark::Counter::kIsIterationInvariantRate);
  const double iters = static_cast<double>(state.iterations());
  if (measured_seconds > 0.0 && iters > 0.0)
    state.counters["aux_pct_of_bw_roofline"] = 100.0 * aux_bytes_per_iter * iters / measured_seconds / bench::kH200HbmBytesPerSecond;
}

// ---- (a) fused logits pipelines ------------------------------------------------------------------
// A case: the policy type, its side inputs on the device, and the same inputs for the sampled rows
// on the host (packed in sampled-row order, so the host reference's row r is sampled row r).

struct AllowRepWatermark {
  using Policy = pol::Pipeline<saf::AllowMask, saf::RepetitionPenalty, saf::GreenListWatermark>;
  static constexpr const char* kName = "allow_rep_watermark";
  static constexpr const char* kPolicies = "AllowMask + RepetitionPenalty(1.2, dense int32 counts [B,V]) + GreenListWatermark(0.25, 2)";
  static constexpr float kPenalty = 1.2f, kGamma = 0.25f, kDelta = 2.0f;
  /// Side inputs, each once: allow mask 4BW + counts 4BV + prev_token 4B.
  static double side_bytes(double B, double V) { return 4.0 * B * mask_words(V) + 4.0 * B * V + 4.0 * B; }

  rt::DeviceBuffer<std::int32_t> mask;
  rt::DeviceBuffer<int> counts, prev;
  std::vector<std::int32_t> h_mask;
  std::vector<int> h_counts, h_prev;

  Status init(int B, int V, rt::stream_t s) {
    const std::size_t W = static_cast<std::size_t>(saf::mask_words(V));
    DEEPSHOCK_RETURN_IF_ERROR(mask.allocate(static_cast<std::size_t>(B) * W));
    DEEPSHOCK_RETURN_IF_ERROR(counts.allocate(static_cast<std::size_t>(B) * static_cast<std::size_t>(V)));
    DEEPSHOCK_RETURN_IF_ERROR(prev.allocate(static_cast<std::size_t>(B)));
    DEEPSHOCK_RETURN_IF_ERROR(fill(mask, WordGen{kSeedMask}, s));
    DEEPSHOCK_RETURN_IF_ERROR(fill(counts, CountGen{kSeedCounts}, s));
    return fill(prev, BelowGen{kSeedPrev, static_cast<std::uint32_t>(V)}, s);
  }
  static Policy::Params make(const std::int32_t* m, const int* c, const int* p, int V) {
    return Policy::Params{saf::AllowMask::Params{m, saf::mask_words(V)}, saf::RepetitionPenalty::Params{c, V, kPenalty},
                          saf::GreenListWatermark::Params{kWatermarkKey, kGamma, kDelta, p}};
  }
  Policy::Params device_params(int V) const { return make(mask.data(), counts.data(), prev.data(), V); }
  Status host_params(const std::vector<int>& rows, int V, rt::stream_t s, Policy::Params& out) {
    DEEPSHOCK_RETURN_IF_ERROR(download_rows(mask.data(), static_cast<std::size_t>(saf::mask_words(V)), rows, h_mask, s));
    DEEPSHOCK_RETURN_IF_ERROR(download_rows(counts.data(), static_cast<std::size_t>(V), rows, h_counts, s));
    DEEPSHOCK_RETURN_IF_ERROR(download_rows(prev.data(), 1, rows, h_prev, s));
    out = make(h_mask.data(), h_counts.data(), h_prev.data(), V);
    return Status::success();
  }
};

struct BanWatermark {
  using Policy = pol::Pipeline<saf::TokenBan, saf::GreenListWatermark>;
  static constexpr const char* kName = "ban_watermark";
  static constexpr const char* kPolicies = "TokenBan(shared mask, ~1% banned) + GreenListWatermark(0.25, 2)";
  static constexpr float kGamma = 0.25f, kDelta = 2.0f;
  /// Side inputs, each once: the shared ban mask 4W + prev_token 4B.
  static double side_bytes(double B, double V) { return 4.0 * mask_words(V) + 4.0 * B; }

  rt::DeviceBuffer<std::uint32_t> ban;
  rt::DeviceBuffer<int> prev;
  std::vector<std::uint32_t> h_ban;
  std::vector<int> h_prev;

  Status init(int B, int V, rt::stream_t s) {
    h_ban.assign(static_cast<std::size_t>(saf::mask_words(V)), 0u);
    for (int c = 0; c < V; ++c)
      if (seeded_word(static_cast<unsigned long long>(c), kSeedBan) % 100u == 0u) h_ban[static_cast<std::size_t>(c >> 5)] |= 1u << (c & 31);
    DEEPSHOCK_RETURN_IF_ERROR(upload(ban, h_ban, s));
    DEEPSHOCK_RETURN_IF_ERROR(prev.allocate(static_cast<std::size_t>(B)));
    return fill(prev, BelowGen{kSeedPrev, static_cast<std::uint32_t>(V)}, s);
  }
  static Policy::Params make(const std::uint32_t* b, const int* p, int V) {
    return Policy::Params{saf::TokenBan::Params{b, saf::mask_words(V)}, saf::GreenListWatermark::Params{kWatermarkKey, kGamma, kDelta, p}};
  }
  Policy::Params device_params(int V) const { return make(ban.data(), prev.data(), V); }
  Status host_params(const std::vector<int>& rows, int V, rt::stream_t s, Policy::Params& out) {
    DEEPSHOCK_RETURN_IF_ERROR(download_rows(prev.data(), 1, rows, h_prev, s));
    out = make(h_ban.data(), h_prev.data(), V);
    return Status::success();
  }
};

struct GroupThresholdColumns {
  using Policy = ds::fair::GroupThreshold;
  static constexpr const char* kName = "group_threshold";
  static constexpr const char* kPolicies = "fair::GroupThreshold (Axis::column, 4 groups)";
  static constexpr int kGroups = 4;
  /// Side inputs, each once: group ids 4V + thresholds 4G.
  static double side_bytes(double, double V) { return 4.0 * V + 4.0 * kGroups; }

  rt::DeviceBuffer<float> thresholds;
  rt::DeviceBuffer<int> groups;
  std::vector<float> h_thresholds{0.5f, -0.25f, 1.0f, 0.0f};
  std::vector<int> h_groups;

  Status init(int, int V, rt::stream_t s) {
    DEEPSHOCK_RETURN_IF_ERROR(upload(thresholds, h_thresholds, s));
    DEEPSHOCK_RETURN_IF_ERROR(groups.allocate(static_cast<std::size_t>(V)));
    return fill(groups, BelowGen{kSeedGroups, static_cast<std::uint32_t>(kGroups)}, s);
  }
  static Policy::Params make(const float* t, const int* g) { return Policy::Params{t, g, kGroups, Policy::Axis::column}; }
  Policy::Params device_params(int) const { return make(thresholds.data(), groups.data()); }
  Status host_params(const std::vector<int>&, int, rt::stream_t s, Policy::Params& out) {
    DEEPSHOCK_RETURN_IF_ERROR(download_all(groups, h_groups, s));
    out = make(h_thresholds.data(), h_groups.data());
    return Status::success();
  }
};

/// Device bytes of a pipeline benchmark: logits 4BV, the check's out-of-place buffer 4BV, side inputs.
template <class Case>
double pipeline_footprint(double B, double V) {
  return 8.0 * B * V + Case::side_bytes(B, V);
}

/// Args V, B: Case's policy in place on [B, V] fp32 logits ~ U[-8, 8).
template <class Case>
void BM_pipeline(benchmark::State& state) {
  using P = typename Case::Policy;
  const int V = static_cast<int>(state.range(0)), B = static_cast<int>(state.range(1));
  state.SetLabel(std::string(Case::kPolicies) + "; " + vocab_model(V));
  GpuContext g;
  Case c;
  rt::DeviceBuffer<float> logits;
  const std::vector<int> rows = sampled_rows(B);
  const int n_rows = static_cast<int>(rows.size());
  std::vector<float> h_in, h_ref, h_got;
  typename P::Params dev{}, host{};
  auto prepare = [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR(g.init());
    DEEPSHOCK_RETURN_IF_ERROR(logits.allocate(static_cast<std::size_t>(B) * static_cast<std::size_t>(V)));
    DEEPSHOCK_RETURN_IF_ERROR(fill(logits, UniformGen{kSeedLogits, 8.0f}, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(c.init(B, V, g.s()));
    dev = c.device_params(V);
    DEEPSHOCK_RETURN_IF_ERROR(download_rows(logits.data(), static_cast<std::size_t>(V), rows, h_in, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(c.host_params(rows, V, g.s(), host));
    h_ref.assign(h_in.size(), 0.0f);
    return pol::reference::run_pipeline<P>(host, h_in.data(), h_ref.data(), n_rows, V);
  };
  if (!bench::ok_or_skip(state, prepare())) return;

  auto in_place = [&]() -> Status { return pol::run_pipeline<P>(dev, logits.data(), logits.data(), B, V, g.s()); };
  std::string error;
  auto check = [&]() -> Status {
    {  // out of place into NaN: a skipped element stays NaN; the buffer is freed before timing
      rt::DeviceBuffer<float> out;
      DEEPSHOCK_RETURN_IF_ERROR(out.allocate(logits.size()));
      DEEPSHOCK_RETURN_IF_ERROR(out.fill_bytes(0xFF, g.s()));
      DEEPSHOCK_RETURN_IF_ERROR(pol::run_pipeline<P>(dev, logits.data(), out.data(), B, V, g.s()));
      DEEPSHOCK_RETURN_IF_ERROR(download_rows(out.data(), static_cast<std::size_t>(V), rows, h_got, g.s()));
      error = compare_rows_bitwise(h_got, h_ref, rows, V, "out of place");
      if (!error.empty()) return Status::success();
    }
    DEEPSHOCK_RETURN_IF_ERROR(in_place());
    DEEPSHOCK_RETURN_IF_ERROR(download_rows(logits.data(), static_cast<std::size_t>(V), rows, h_got, g.s()));
    error = compare_rows_bitwise(h_got, h_ref, rows, V, "in place");
    if (!error.empty()) return Status::success();
    return warm_up(in_place, g.s());
  };
  if (!bench::ok_or_skip(state, check()) || !check_passed(state, error, "run_pipeline differs from the host reference")) return;

  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, g.timer, g.l2, g.s(), in_place)) return;
  const double bytes = 8.0 * B * V;
  bench::set_roofline_counters(state, bytes, 0.0, bench::kH200HbmBytesPerSecond, bench::kH200DenseBf16FlopPerSecond,
                               g.timer.total_seconds());
  set_aux_counters(state, bytes + Case::side_bytes(B, V), g.timer.total_seconds());
}

// ---- (b) discrete noise --------------------------------------------------------------------------
enum class Mechanism { gaussian, laplace };
constexpr priv::Rational kSigma2{100, 1};       ///< discrete Gaussian sigma^2 (sigma = 10)
constexpr priv::Rational kLaplaceScale{10, 1};  ///< discrete Laplace scale t
constexpr priv::Grid kGrid{-8, 64.0f};          ///< float path: spacing 2^-8, clamp 64 (2^14 steps)
constexpr std::int64_t kNoisePrefix = 1 << 16;  ///< leading values checked with the reference
constexpr int kNoiseSpread = 4096;              ///< further indices checked, spread over [0, n)

/// The device call of (T, M) on `values` [n].
template <class T, Mechanism M>
Status add_noise_device(T* values, std::int64_t n, std::uint32_t stream_id, rt::stream_t s) {
  if constexpr (std::is_same_v<T, std::int64_t>) {
    if constexpr (M == Mechanism::gaussian) return priv::add_discrete_gaussian_noise(values, n, kSigma2, kNoiseSeed, stream_id, s);
    else return priv::add_discrete_laplace_noise(values, n, kLaplaceScale, kNoiseSeed, stream_id, s);
  } else {
    if constexpr (M == Mechanism::gaussian) return priv::add_discrete_gaussian_noise(values, n, kGrid, kSigma2, kNoiseSeed, stream_id, s);
    else return priv::add_discrete_laplace_noise(values, n, kGrid, kLaplaceScale, kNoiseSeed, stream_id, s);
  }
}
/// The host reference of (T, M) on values [n] (draws 0..n-1).
template <class T, Mechanism M>
Status add_noise_reference(T* values, std::int64_t n, std::uint32_t stream_id) {
  if constexpr (std::is_same_v<T, std::int64_t>) {
    if constexpr (M == Mechanism::gaussian) return priv::reference::add_discrete_gaussian_noise(values, n, kSigma2, kNoiseSeed, stream_id);
    else return priv::reference::add_discrete_laplace_noise(values, n, kLaplaceScale, kNoiseSeed, stream_id);
  } else {
    if constexpr (M == Mechanism::gaussian)
      return priv::reference::add_discrete_gaussian_noise(values, n, kGrid, kSigma2, kNoiseSeed, stream_id);
    else return priv::reference::add_discrete_laplace_noise(values, n, kGrid, kLaplaceScale, kNoiseSeed, stream_id);
  }
}
/// The value the reference computes at index i from `value` (the reference's own loop body).
template <class T, Mechanism M>
struct NoiseAt {
  std::conditional_t<M == Mechanism::gaussian, priv::DiscreteGaussian, priv::DiscreteLaplace> noise{};
  priv::GridParams grid{};
  Status init() {
    if constexpr (M == Mechanism::gaussian) DEEPSHOCK_RETURN_IF_ERROR(priv::make_discrete_gaussian(kSigma2, "sigma2", noise));
    else DEEPSHOCK_RETURN_IF_ERROR(priv::make_discrete_laplace(kLaplaceScale, "scale", noise));
    return priv::make_grid(kGrid, grid);
  }
  T operator()(T value, std::uint32_t stream_id, std::uint64_t i) const {
    if constexpr (std::is_same_v<T, std::int64_t>) return priv::saturating_add(value, noise.sample(kNoiseSeed, stream_id, i));
    else return priv::release_on_grid(value, grid, noise, kNoiseSeed, stream_id, i);
  }
};

template <class T>
std::string value_text(T v) {
  if constexpr (std::is_same_v<T, float>) return float_text(v);
  else return std::to_string(v);
}

/// Arg n: values noised in place. Initial values: int64 (i mod 2001) - 1000, float U[-8, 8).
template <class T, Mechanism M>
void BM_noise(benchmark::State& state) {
  static_assert(std::is_same_v<T, std::int64_t> || std::is_same_v<T, float>, "BM_noise: int64 or float values");
  const std::int64_t n = state.range(0);
  constexpr bool kInt = std::is_same_v<T, std::int64_t>;
  state.SetLabel(std::string(M == Mechanism::gaussian ? "discrete Gaussian sigma^2=100" : "discrete Laplace t=10") +
                 (kInt ? ", int64 in place" : ", float released on grid 2^-8 clamp 64"));
  GpuContext g;
  rt::DeviceBuffer<T> values;
  std::vector<T> h_init, h_got;
  auto init_value = [](std::uint64_t i) -> T {
    if constexpr (kInt) return PatternGen{}(i);
    else return UniformGen{kSeedGrid, 8.0f}(i);
  };
  std::uint32_t stream_id = 1;  // the check's draws; every timed call takes the next id
  auto prepare = [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR(g.init());
    DEEPSHOCK_RETURN_IF_ERROR(values.allocate(static_cast<std::size_t>(n)));
    if constexpr (kInt) DEEPSHOCK_RETURN_IF_ERROR(fill(values, PatternGen{}, g.s()));
    else DEEPSHOCK_RETURN_IF_ERROR(fill(values, UniformGen{kSeedGrid, 8.0f}, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(download_all(values, h_init, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR((add_noise_device<T, M>(values.data(), n, stream_id, g.s())));
    return download_all(values, h_got, g.s());
  };
  if (!bench::ok_or_skip(state, prepare())) return;

  // The fill itself (the host recomputes the initial values), then the noised values.
  std::string error;
  for (std::int64_t i = 0; i < n && error.empty(); i += n / 64 + 1) {
    const T want = init_value(static_cast<std::uint64_t>(i));
    if (std::memcmp(&h_init[static_cast<std::size_t>(i)], &want, sizeof(T)) != 0) error = "fill: value " + std::to_string(i) + " is wrong";
  }
  const std::int64_t m = std::min(n, kNoisePrefix);
  std::vector<T> ref(h_init.begin(), h_init.begin() + m);
  NoiseAt<T, M> at;
  if (!bench::ok_or_skip(state, add_noise_reference<T, M>(ref.data(), m, stream_id)) || !bench::ok_or_skip(state, at.init())) return;
  auto compare = [&](std::int64_t i, T want) {
    if (error.empty() && std::memcmp(&h_got[static_cast<std::size_t>(i)], &want, sizeof(T)) != 0)
      error = "value " + std::to_string(i) + " is " + value_text(h_got[static_cast<std::size_t>(i)]) + ", reference " + value_text(want);
  };
  for (std::int64_t i = 0; i < m; ++i) compare(i, ref[static_cast<std::size_t>(i)]);
  for (int j = 0; j < kNoiseSpread; ++j) {
    const std::int64_t i = n == 1 ? 0 : static_cast<std::int64_t>(static_cast<double>(j) * static_cast<double>(n - 1) / (kNoiseSpread - 1));
    compare(i, at(h_init[static_cast<std::size_t>(i)], stream_id, static_cast<std::uint64_t>(i)));
  }
  if (!check_passed(state, error, "noise differs from the host reference")) return;

  auto work = [&]() -> Status { return add_noise_device<T, M>(values.data(), n, ++stream_id, g.s()); };
  if (!bench::ok_or_skip(state, warm_up(work, g.s()))) return;
  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, g.timer, g.l2, g.s(), work)) return;
  const double bytes = 2.0 * sizeof(T) * static_cast<double>(n);
  bench::set_roofline_counters(state, bytes, 0.0, bench::kH200HbmBytesPerSecond, bench::kH200DenseBf16FlopPerSecond,
                               g.timer.total_seconds());
  state.counters["samples_per_second"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

// ---- (c) selection -------------------------------------------------------------------------------
/// Device bytes of a selection benchmark: logits 4BV, ids and values 8Bk.
double select_footprint(double B, double V, double k) { return 4.0 * B * V + 8.0 * B * k; }

/// Gumbel-max over one row with the row's own index: what policy::sample computes
/// (noisy_topk with k = 1, Noise::gumbel, scale 1) and policy::reference::sample loops over.
int host_sample(const float* x, int row, int V, std::uint64_t seed) {
  int best = 0;
  float best_score = pol::select_score(pol::Noise::gumbel, 1.0f, seed, row, 0, x[0]);
  for (int c = 1; c < V; ++c) {
    const float s = pol::select_score(pol::Noise::gumbel, 1.0f, seed, row, c, x[c]);
    if (pol::select_ranks_before(s, c, best_score, best)) best = c, best_score = s;
  }
  return best;
}

/// Args V, B, k (k = 0: policy::sample, ids [B]; else policy::topk, ids and values [B, k]).
void run_select(benchmark::State& state, int V, int B, int k) {
  const bool sampling = k == 0;
  const int kk = sampling ? 1 : k;  // outputs per row
  state.SetLabel(std::string(sampling ? "Gumbel-max sample" : "top-k") + "; " + vocab_model(V));
  GpuContext g;
  rt::DeviceBuffer<float> logits, values;
  rt::DeviceBuffer<int> ids;
  const std::vector<int> rows = sampled_rows(B);
  const std::size_t out_n = static_cast<std::size_t>(B) * static_cast<std::size_t>(kk);
  auto work = [&]() -> Status {
    if (sampling) return pol::sample(logits.data(), B, V, kSampleSeed, ids.data(), g.s());
    return pol::topk(logits.data(), B, V, k, ids.data(), values.data(), g.s());
  };
  std::vector<float> h_rows, h_vals;
  std::vector<int> h_ids;
  auto prepare = [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR(g.init());
    DEEPSHOCK_RETURN_IF_ERROR(logits.allocate(static_cast<std::size_t>(B) * static_cast<std::size_t>(V)));
    DEEPSHOCK_RETURN_IF_ERROR(ids.allocate(out_n));
    if (!sampling) DEEPSHOCK_RETURN_IF_ERROR(values.allocate(out_n));
    DEEPSHOCK_RETURN_IF_ERROR(fill(logits, UniformGen{kSeedLogits, 8.0f}, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(ids.fill_bytes(0xFF, g.s()));                    // -1
    if (!sampling) DEEPSHOCK_RETURN_IF_ERROR(values.fill_bytes(0xFF, g.s()));  // NaN
    DEEPSHOCK_RETURN_IF_ERROR(work());
    DEEPSHOCK_RETURN_IF_ERROR(download_all(ids, h_ids, g.s()));
    if (!sampling) DEEPSHOCK_RETURN_IF_ERROR(download_all(values, h_vals, g.s()));
    return download_rows(logits.data(), static_cast<std::size_t>(V), rows, h_rows, g.s());
  };
  if (!bench::ok_or_skip(state, prepare())) return;

  auto at = [&](int r, int i) { return "row " + std::to_string(r) + " rank " + std::to_string(i) + ": "; };
  std::string error;
  // Every row: valid, distinct ids; values in rank order.
  for (int r = 0; r < B && error.empty(); ++r)
    for (int i = 0; i < kk && error.empty(); ++i) {
      const std::size_t o = static_cast<std::size_t>(r) * static_cast<std::size_t>(kk) + static_cast<std::size_t>(i);
      if (h_ids[o] < 0 || h_ids[o] >= V) error = at(r, i) + "id " + std::to_string(h_ids[o]) + " is not a column";
      for (int q = 0; q < i && error.empty(); ++q)
        if (h_ids[o - static_cast<std::size_t>(i - q)] == h_ids[o])
          error = at(r, i) + "column " + std::to_string(h_ids[o]) + " chosen twice";
      if (!sampling && error.empty() && (std::isnan(h_vals[o]) || (i > 0 && h_vals[o] > h_vals[o - 1])))
        error = at(r, i) + "value " + float_text(h_vals[o]) + " is NaN or above the previous rank's";
    }
  // Sampled rows: exactly the host reference.
  const int n_rows = static_cast<int>(rows.size());
  std::vector<int> ref_ids(static_cast<std::size_t>(n_rows) * static_cast<std::size_t>(kk));
  std::vector<float> ref_vals(ref_ids.size());
  if (sampling) {
    for (int i = 0; i < n_rows; ++i)
      ref_ids[static_cast<std::size_t>(i)] = host_sample(h_rows.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(V),
                                                         rows[static_cast<std::size_t>(i)], V, kSampleSeed);
  } else if (!bench::ok_or_skip(state, pol::reference::topk(h_rows.data(), n_rows, V, k, ref_ids.data(), ref_vals.data()))) {
    return;
  }
  for (int i = 0; i < n_rows && error.empty(); ++i)
    for (int j = 0; j < kk && error.empty(); ++j) {
      const int r = rows[static_cast<std::size_t>(i)];
      const std::size_t o = static_cast<std::size_t>(r) * static_cast<std::size_t>(kk) + static_cast<std::size_t>(j);
      const std::size_t ro = static_cast<std::size_t>(i) * static_cast<std::size_t>(kk) + static_cast<std::size_t>(j);
      if (h_ids[o] != ref_ids[ro]) error = at(r, j) + "id " + std::to_string(h_ids[o]) + ", reference " + std::to_string(ref_ids[ro]);
      else if (!sampling && std::memcmp(&h_vals[o], &ref_vals[ro], sizeof(float)) != 0)
        error = at(r, j) + "value " + float_text(h_vals[o]) + ", reference " + float_text(ref_vals[ro]);
    }
  if (!check_passed(state, error, sampling ? "sample differs from the host reference" : "topk differs from the host reference")) return;

  if (!bench::ok_or_skip(state, warm_up(work, g.s()))) return;
  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, g.timer, g.l2, g.s(), work)) return;
  const double bytes = 4.0 * B * V + (sampling ? 4.0 * B : 8.0 * B * k);
  bench::set_roofline_counters(state, bytes, 0.0, bench::kH200HbmBytesPerSecond, bench::kH200DenseBf16FlopPerSecond,
                               g.timer.total_seconds());
}

void BM_topk(benchmark::State& state) {
  run_select(state, static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), static_cast<int>(state.range(2)));
}
void BM_sample(benchmark::State& state) { run_select(state, static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), 0); }

// ---- registration ------------------------------------------------------------------------------
benchmark::internal::Benchmark* finish(benchmark::internal::Benchmark* b) { return b->UseManualTime()->Unit(benchmark::kMicrosecond); }

template <class Case>
void register_pipeline() {
  auto* b = benchmark::RegisterBenchmark((std::string("pipeline/") + Case::kName).c_str(), BM_pipeline<Case>)->ArgNames({"V", "B"});
  for (const int V : kVocabs)
    for (const int B : kBatches)
      if (pipeline_footprint<Case>(B, V) <= kMaxFootprintBytes) b->Args({V, B});
  finish(b);
}

template <class T, Mechanism M>
void register_noise(const char* name) {
  finish(benchmark::RegisterBenchmark(name, BM_noise<T, M>)->ArgName("n")->Arg(std::int64_t(1) << 20)->Arg(std::int64_t(1) << 24));
}

[[maybe_unused]] const bool kRegistered = [] {
  register_pipeline<AllowRepWatermark>();
  register_pipeline<BanWatermark>();
  register_pipeline<GroupThresholdColumns>();

  register_noise<std::int64_t, Mechanism::gaussian>("noise/int64/discrete_gaussian");
  register_noise<std::int64_t, Mechanism::laplace>("noise/int64/discrete_laplace");
  register_noise<float, Mechanism::gaussian>("noise/float_grid/discrete_gaussian");
  register_noise<float, Mechanism::laplace>("noise/float_grid/discrete_laplace");

  auto* topk = benchmark::RegisterBenchmark("topk", BM_topk)->ArgNames({"V", "B", "k"});
  auto* sample = benchmark::RegisterBenchmark("sample", BM_sample)->ArgNames({"V", "B"});
  for (const int V : kVocabs)
    for (const int B : kBatches) {
      for (const int k : kTopKs)
        if (select_footprint(B, V, k) <= kMaxFootprintBytes) topk->Args({V, B, k});
      if (select_footprint(B, V, 1) <= kMaxFootprintBytes) sample->Args({V, B});
    }
  finish(topk);
  finish(sample);
  return true;
}();

}  // namespace

// GPU benchmarks: skip cleanly without a device; 0.05 s of GPU time per benchmark unless
// --benchmark_min_time says otherwise (each iteration also pays an untimed L2 flush).
DEEPSHOCK_BENCH_MAIN(/*needs_device=*/true, /*default_min_time=*/"0.05")
