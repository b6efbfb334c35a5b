// bench/support/bench_util.hpp — shared helpers for deepshock's Google Benchmark binaries.
//
// * Timers for manual time (`->UseManualTime()`): `GpuTimer` (a pair of deepshock::rt::Event
//   recorded on a stream: GPU time between them) and `WallTimer` (steady_clock, for CPU code).
//   Both report each iteration with `state.SetIterationTime(seconds)` and keep the total, which
//   is exactly the time Google Benchmark divides rate counters by for a manual-time benchmark.
// * `set_roofline_counters`: bytes/s, FLOP/s and the percentage of a roofline.
// * `L2Flusher`: overwrites a buffer twice the L2 size so a timed kernel reads from HBM.
// * `bench_main` / DEEPSHOCK_BENCH_MAIN: a main that skips GPU benchmarks cleanly when no device
//   exists (prints one line, exits 0) and records the device in the JSON context.
//
// Compiles with nvcc and in simulator builds (DEEPSHOCK_SIM), where "events" read a steady clock.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/platform/runtime.hpp"

namespace deepshock::bench {

// H200 SXM peaks: leads from NVIDIA's H200 datasheet, not measurements. A GPU run should
// measure the achievable numbers (e.g. a copy kernel, a cuBLAS GEMM) and record them beside these.
inline constexpr double kH200HbmBytesPerSecond = 4.8e12;       ///< HBM3e bandwidth, B/s
inline constexpr double kH200DenseBf16FlopPerSecond = 989e12;  ///< dense bf16 tensor-core FLOP/s
inline constexpr double kH200DenseFp8FlopPerSecond = 1979e12;  ///< dense FP8 (and int8: OP/s) tensor-core rate

/// If `st` is an error, marks the benchmark failed with its message and returns false.
inline bool ok_or_skip(benchmark::State& state, const Status& st) {
  if (st.ok()) return true;
  state.SkipWithError(st.to_string().c_str());
  return false;
}

/// Sum of the manual iteration times reported so far (seconds).
class ManualTime {
 public:
  void report(benchmark::State& state, double seconds) {
    state.SetIterationTime(seconds);
    total_s_ += seconds;
  }
  double total_seconds() const noexcept { return total_s_; }

 private:
  double total_s_ = 0.0;
};

/// GPU time between two events recorded on a stream (CUDA events; a steady clock in the simulator).
class GpuTimer : public ManualTime {
 public:
  Status init() {
    DEEPSHOCK_RETURN_IF_ERROR(start_.create());
    return stop_.create();
  }
  Status start(rt::stream_t s) { return start_.record(s); }
  Status stop(rt::stream_t s) { return stop_.record(s); }
  /// Waits for the stop event and reports the elapsed time as this iteration's time.
  Status finish(benchmark::State& state) {
    DEEPSHOCK_RETURN_IF_ERROR(stop_.synchronize());
    float ms = 0.0f;
    DEEPSHOCK_RETURN_IF_ERROR(rt::Event::elapsed_ms(start_, stop_, ms));
    report(state, static_cast<double>(ms) * 1e-3);
    return Status::success();
  }

 private:
  rt::Event start_, stop_;
};

/// Host wall-clock time of one iteration (for CPU benchmarks such as the simulator's).
class WallTimer : public ManualTime {
 public:
  void start() { t0_ = std::chrono::steady_clock::now(); }
  void finish(benchmark::State& state) { report(state, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count()); }

 private:
  std::chrono::steady_clock::time_point t0_{};
};

/// Makes the next kernel read its inputs from HBM: writes a buffer of twice the L2 size.
/// In the simulator (no L2 to query) it does nothing.
class L2Flusher {
 public:
  Status init() {
#if !DEEPSHOCK_SIM
    int dev = 0, l2 = 0;
    DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(cudaGetDevice(&dev), "cudaGetDevice"));
    DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev), "cudaDeviceGetAttribute(L2)"));
    if (l2 > 0) return buf_.allocate(2 * static_cast<std::size_t>(l2));
#endif
    return Status::success();
  }
  Status flush(rt::stream_t s) { return buf_.size() ? buf_.fill_bytes(0x5A, s) : Status::success(); }

 private:
  rt::DeviceBuffer<unsigned char> buf_;
};

/// Stream, event timer and L2 flusher of one GPU benchmark run.
struct GpuContext {
  rt::Stream stream;
  GpuTimer timer;
  L2Flusher l2;
  Status init() {
    DEEPSHOCK_RETURN_IF_ERROR(stream.create());
    DEEPSHOCK_RETURN_IF_ERROR(timer.init());
    return l2.init();
  }
  rt::stream_t s() const { return stream.get(); }
};

/// Runs `work()` (returns Status: launches only, no host sync) once between the timer's events,
/// after an untimed L2 flush, and reports the GPU time. The flush also keeps the stream busy while
/// the host enqueues `work`, so launch latency stays outside the events. False after an error.
/// (Status chains use DEEPSHOCK_RETURN_IF_ERROR: nvcc warns, #2810-D, on `st = f();` because the
/// assignment returns a reference to the [[nodiscard]] Status.)
template <class Work>
bool timed_gpu_iteration(benchmark::State& state, GpuTimer& timer, L2Flusher& l2, rt::stream_t s, Work&& work) {
  auto run = [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR(l2.flush(s));
    DEEPSHOCK_RETURN_IF_ERROR(timer.start(s));
    DEEPSHOCK_RETURN_IF_ERROR(work());
    DEEPSHOCK_RETURN_IF_ERROR(timer.stop(s));
    return timer.finish(state);
  };
  return ok_or_skip(state, run());
}

/// Sets throughput counters from bytes and FLOPs moved per iteration:
///   bytes_per_second, flop_per_second: Counter::kIsIterationInvariantRate (Google Benchmark
///     multiplies by the iteration count and divides by the measured time: manual time here);
///   pct_of_bw_roofline, pct_of_flop_roofline: plain values computed here from the same numbers,
///     100 * per_iter * iterations / measured_seconds / peak, where measured_seconds is the total
///     the timer reported (identical to the time Google Benchmark uses for the rates above).
/// A quantity passed as 0 gets no counters (e.g. no FLOP roofline for a memory-bound kernel).
inline void set_roofline_counters(benchmark::State& state, double bytes_per_iter, double flops_per_iter, double peak_bytes_per_s,
                                  double peak_flops_per_s, double measured_seconds) {
  using benchmark::Counter;
  const double iters = static_cast<double>(state.iterations());
  const bool timed = measured_seconds > 0.0 && iters > 0.0;
  if (bytes_per_iter > 0.0) {
    state.counters["bytes_per_second"] = Counter(bytes_per_iter, Counter::kIsIterationInvariantRate);
    if (timed) state.counters["pct_of_bw_roofline"] = 100.0 * bytes_per_iter * iters / measured_seconds / peak_bytes_per_s;
  }
  if (flops_per_iter > 0.0) {
    state.counters["flop_per_second"] = Counter(flops_per_iter, Counter::kIsIterationInvariantRate);
    if (timed) state.counters["pct_of_flop_roofline"] = 100.0 * flops_per_iter * iters / measured_seconds / peak_flops_per_s;
  }
}

namespace detail {
inline std::string json_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}
/// The value of `--name=VALUE` in argv, or nullptr.
inline const char* find_flag(int argc, char** argv, std::string_view name) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a.size() > name.size() + 3 && a.substr(0, 2) == "--" && a.substr(2, name.size()) == name && a[name.size() + 2] == '=')
      return argv[i] + name.size() + 3;
  }
  return nullptr;
}
}  // namespace detail

/// main() of a benchmark binary. `needs_device`: without a device, print one line saying the
/// benchmarks are skipped and return 0; when `--benchmark_out=FILE` was given, FILE receives a
/// valid JSON document with an empty "benchmarks" list and the reason under context.
/// `default_min_time` (seconds, e.g. "0.05"; nullptr for the library default) applies unless the
/// command line sets --benchmark_min_time.
inline int bench_main(int argc, char** argv, bool needs_device, const char* default_min_time) {
  std::vector<char*> args(argv, argv + argc);
  std::string min_time_flag;
  if (default_min_time && !detail::find_flag(argc, argv, "benchmark_min_time")) {
    min_time_flag = std::string("--benchmark_min_time=") + default_min_time;
    args.insert(args.begin() + 1, min_time_flag.data());
  }
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  const char* exe = argc > 0 ? argv[0] : "benchmark";
  if (needs_device && !rt::device_available()) {
    std::printf("%s: no CUDA device available; GPU benchmarks skipped.\n", exe);
    if (const char* out = detail::find_flag(argc, argv, "benchmark_out")) {
      if (std::FILE* f = std::fopen(out, "w")) {
        std::fprintf(f, "{\n  \"context\": {\"executable\": \"%s\", \"deepshock_skipped\": \"no CUDA device\"},\n  \"benchmarks\": []\n}\n",
                     detail::json_escape(exe).c_str());
        std::fclose(f);
      }
    }
    benchmark::Shutdown();
    return 0;
  }
  benchmark::AddCustomContext("deepshock_backend", rt::backend_name());
  benchmark::AddCustomContext("deepshock_device", rt::device_name());
  if (needs_device) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%.4g B/s HBM, %.4g FLOP/s dense bf16, %.4g fp8 / int8 (H200 datasheet leads)", kH200HbmBytesPerSecond,
                  kH200DenseBf16FlopPerSecond, kH200DenseFp8FlopPerSecond);
    benchmark::AddCustomContext("deepshock_roofline_peaks", buf);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace deepshock::bench

/// Defines main() for a benchmark binary; see deepshock::bench::bench_main.
#define DEEPSHOCK_BENCH_MAIN(needs_device, default_min_time) \
  int main(int argc, char** argv) { return ::deepshock::bench::bench_main(argc, argv, needs_device, default_min_time); }
