// bench/bench_sim.cpp — the CPU SIMT simulator's own cost (host compiler, deepshock::sim).
//
// What a kernel costs in the simulator is mostly fiber switches: every `__syncthreads` parks each
// thread once, every warp-synchronous op (a shuffle) parks 31 of 32 lanes. These benchmarks keep
// those costs known:
//   BM_sim_block_barrier   R x __syncthreads() in a grid of G blocks x B threads
//   BM_sim_warp_reduce     R x warp::reduce_sum (5 shuffles each) per warp
//   BM_sim_empty_launch    launch of an empty kernel (fiber setup per thread, per block)
// The first two take a fourth argument, the resident blocks (DEEPSHOCK_SIM_RESIDENT_BLOCKS): 1
// runs blocks one after another; 4 interleaves four blocks' threads (turns of a few rounds,
// each switch of blocks swaps the images of the static shared variables).
// Timing: host wall clock per iteration (steady_clock, reported as manual time), so the rates
// below and the plain per-operation numbers are computed from exactly the same seconds.
// The resume order follows DEEPSHOCK_SIM_SCHEDULE (default in_order); it is in the JSON context.
#include <cstdint>
#include <string>

#include "bench_util.hpp"
#include "deepshock/platform/block.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/warp.hpp"

namespace {
namespace ds = deepshock;
namespace bench = deepshock::bench;
using benchmark::Counter;

// ---- kernels (plain CUDA: launched through deepshock::launch) ---------------------------------

/// `rounds` block barriers; `sink` receives a value so the loop has an observable result.
DEEPSHOCK_KERNEL void barrier_loop_kernel(int rounds, int* sink) {
  int acc = 0;
  for (int r = 0; r < rounds; ++r) {
    acc += r;
    __syncthreads();
  }
  if (ds::block::thread_rank() == 0) sink[blockIdx.x] = acc;
}

/// `rounds` warp sum-reductions per warp; lane 0 of each warp writes its result.
DEEPSHOCK_KERNEL void warp_reduce_loop_kernel(int rounds, float* out) {
  float v = static_cast<float>(threadIdx.x);
  for (int r = 0; r < rounds; ++r) v = ds::warp::reduce_sum(v) * (1.0f / 32.0f);
  if (ds::warp::lane_id() == 0) out[blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32] = v;
}

DEEPSHOCK_KERNEL void empty_kernel() {}

// ---- helpers ----------------------------------------------------------------------------------

/// Plain counter: nanoseconds per `events_per_iter` event, from the timer's total.
void set_ns_per(benchmark::State& state, const char* name, double events_per_iter, const bench::ManualTime& t) {
  const double events = events_per_iter * static_cast<double>(state.iterations());
  if (events > 0.0) state.counters[name] = t.total_seconds() * 1e9 / events;
}

/// Fiber switches during the timed loop: a rate, and per `per_iter` events (a sanity ratio).
void set_switch_counters(benchmark::State& state, std::uint64_t switches, double per_iter, const char* ratio_name) {
  state.counters["switches_per_second"] = Counter(static_cast<double>(switches), Counter::kIsRate);
  const double events = per_iter * static_cast<double>(state.iterations());
  if (events > 0.0) state.counters[ratio_name] = static_cast<double>(switches) / events;
}

/// One untimed launch (allocates the fiber pool), then the timed loop; resets sim::stats() in
/// between so the counters cover the timed launches only. False (benchmark skipped) on error.
/// `resident`: blocks resident at once (0: as the environment says).
template <class Launch>
bool run_timed(benchmark::State& state, bench::WallTimer& timer, Launch&& launch_once, unsigned resident = 0) {
  ds::sim::Options o = ds::sim::options();
  if (resident > 0) o.resident_blocks = resident;
  ds::sim::ScopedOptions scope(o);
  if (!bench::ok_or_skip(state, launch_once())) return false;
  ds::sim::reset_stats();
  for (auto _ : state) {
    timer.start();
    const ds::Status st = launch_once();
    timer.finish(state);
    if (!bench::ok_or_skip(state, st)) return false;
  }
  return true;
}

// ---- benchmarks -------------------------------------------------------------------------------

/// Args: blocks G, threads per block B, barriers per thread R, resident blocks.
/// barriers_per_second: thread barrier arrivals per second (G*B*R per iteration, a rate);
/// ns_per_arrival: total time / arrivals; switches_per_second: fiber resumes (sim::stats());
/// switches_per_arrival: 1 - 1/B + 1/R (each thread is resumed once at start, and after every
/// barrier all but the last to arrive, which completes the barrier and runs on).
void BM_sim_block_barrier(benchmark::State& state) {
  const unsigned G = static_cast<unsigned>(state.range(0)), B = static_cast<unsigned>(state.range(1));
  const int R = static_cast<int>(state.range(2));
  ds::rt::DeviceBuffer<int> sink;
  if (!bench::ok_or_skip(state, sink.allocate(G))) return;
  bench::WallTimer timer;
  const ds::LaunchConfig cfg{dim3(G), dim3(B), 0, nullptr};
  if (!run_timed(
          state, timer, [&] { return ds::launch(barrier_loop_kernel, cfg, R, sink.data()); }, static_cast<unsigned>(state.range(3))))
    return;
  const ds::sim::Stats s = ds::sim::stats();
  const double arrivals = double(G) * B * R;
  state.counters["barriers_per_second"] = Counter(arrivals, Counter::kIsIterationInvariantRate);
  set_ns_per(state, "ns_per_arrival", arrivals, timer);
  set_switch_counters(state, s.switches, arrivals, "switches_per_arrival");
  state.counters["block_barriers_per_iteration"] = static_cast<double>(s.block_barriers) / static_cast<double>(state.iterations());
}

/// Args: blocks G, threads per block B (a multiple of 32), reductions per warp R, resident blocks.
/// warp_reductions_per_second: G*(B/32)*R per iteration (a rate); warp_ops_per_second: the
/// simulator's warp-synchronous operations (sim::stats(), 5 shuffles per float reduction);
/// ns_per_warp_op: total time / warp ops; switches_per_warp_op: 31 (every lane but the last to
/// arrive parks) plus the start-up resumes, 32 per warp, spread over its ops.
void BM_sim_warp_reduce(benchmark::State& state) {
  const unsigned G = static_cast<unsigned>(state.range(0)), B = static_cast<unsigned>(state.range(1));
  const int R = static_cast<int>(state.range(2));
  ds::rt::DeviceBuffer<float> out;
  if (!bench::ok_or_skip(state, out.allocate(std::size_t(G) * B / 32))) return;
  bench::WallTimer timer;
  const ds::LaunchConfig cfg{dim3(G), dim3(B), 0, nullptr};
  if (!run_timed(
          state, timer, [&] { return ds::launch(warp_reduce_loop_kernel, cfg, R, out.data()); }, static_cast<unsigned>(state.range(3))))
    return;
  const ds::sim::Stats s = ds::sim::stats();
  const double iters = static_cast<double>(state.iterations());
  const double warp_ops_per_iter = static_cast<double>(s.warp_ops) / iters;
  state.counters["warp_reductions_per_second"] = Counter(double(G) * (B / 32) * R, Counter::kIsIterationInvariantRate);
  state.counters["warp_ops_per_second"] = Counter(static_cast<double>(s.warp_ops), Counter::kIsRate);
  set_ns_per(state, "ns_per_warp_op", warp_ops_per_iter, timer);
  set_switch_counters(state, s.switches, warp_ops_per_iter, "switches_per_warp_op");
}

/// Args: blocks G, threads per block B. launches_per_second (a rate), ns_per_thread (time per
/// simulated thread started and finished); the benchmark's own time is the cost of one launch.
void BM_sim_empty_launch(benchmark::State& state) {
  const unsigned G = static_cast<unsigned>(state.range(0)), B = static_cast<unsigned>(state.range(1));
  bench::WallTimer timer;
  const ds::LaunchConfig cfg{dim3(G), dim3(B), 0, nullptr};
  if (!run_timed(state, timer, [&] { return ds::launch(empty_kernel, cfg); })) return;
  state.counters["launches_per_second"] = Counter(1.0, Counter::kIsIterationInvariantRate);
  set_ns_per(state, "ns_per_thread", double(G) * B, timer);
  state.counters["switches_per_second"] = Counter(static_cast<double>(ds::sim::stats().switches), Counter::kIsRate);
}

BENCHMARK(BM_sim_block_barrier)
    ->ArgNames({"blocks", "threads", "barriers", "resident"})
    ->Args({64, 128, 100, 1})
    ->Args({64, 128, 100, 4})
    ->Args({8, 1024, 20, 1})
    ->Args({256, 32, 10, 1})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_sim_warp_reduce)
    ->ArgNames({"blocks", "threads", "reductions", "resident"})
    ->Args({64, 128, 100, 1})
    ->Args({64, 128, 100, 4})
    ->Args({8, 1024, 20, 1})
    ->Args({256, 32, 10, 1})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_sim_empty_launch)
    ->ArgNames({"blocks", "threads"})
    ->Args({1, 1})
    ->Args({1, 32})
    ->Args({1, 1024})
    ->Args({64, 128})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

/// Records the simulator's schedule in the JSON context, then runs the benchmarks.
int sim_main(int argc, char** argv) {
  const ds::sim::Options& o = ds::sim::options();
  benchmark::AddCustomContext("deepshock_sim_schedule", ds::sim::to_string(o.schedule));
  benchmark::AddCustomContext("deepshock_sim_stack_bytes", std::to_string(o.stack_bytes));
  benchmark::AddCustomContext("deepshock_sim_resident_blocks", std::to_string(o.resident_blocks));
  return bench::bench_main(argc, argv, /*needs_device=*/false, /*default_min_time=*/nullptr);
}

}  // namespace

int main(int argc, char** argv) { return sim_main(argc, argv); }
