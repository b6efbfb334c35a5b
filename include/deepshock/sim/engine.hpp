// deepshock/sim/engine.hpp — the SIMT simulator's execution engine.
//
// A grid runs block by block on the calling OS thread. Each block's threads are fibers that
// run cooperatively: a fiber runs until it reaches a block barrier (`__syncthreads`), a
// warp-synchronous operation (shuffles, votes, match, reduce, `__syncwarp`, the mma model) or
// `__nanosleep`, then yields. A barrier completes when every live thread (warp op: every lane of
// the mask) has arrived; the last to arrive computes the result and wakes the others.
//
// The order in which ready fibers (and blocks) resume is the *schedule*: in order, reversed, or
// seeded random. A race that a fixed order hides usually shows under another one. Select it with
// the environment variable DEEPSHOCK_SIM_SCHEDULE=in_order|reversed|random[:seed] or with
// `sim::ScopedOptions`.
//
// Limits (documented, by design): memory is sequentially consistent (fences are no-ops with
// respect to ordering); blocks never run concurrently, so a kernel that waits for another block
// deadlocks; static `__shared__` memory keeps its contents between blocks (dynamic shared memory
// is poisoned with 0xFF bytes before every block); a failed block's suspended fibers are abandoned
// without unwinding their stacks. Errors (deadlock, bad warp masks, a throw or `__trap()` in a
// kernel) end the launch and come back as a Status from `launch`.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/sim/fiber.hpp"

namespace deepshock::sim {

/// Grid and block extents, as CUDA's dim3.
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/// Order in which ready simulated threads, and the blocks of a grid, are resumed.
enum class Schedule : std::uint8_t { in_order, reversed, random };

/// Process-wide simulator settings.
struct Options {
  Schedule schedule = Schedule::in_order;
  std::uint64_t seed = 0x5eedULL;           ///< seeds the random schedule
  std::size_t stack_bytes = 128 * 1024;      ///< per simulated thread
  std::size_t max_dynamic_smem = 227 * 1024; ///< as sm_90 (opt-in maximum)
};

/// Counters since the last reset (per OS thread).
struct Stats {
  std::uint64_t launches = 0, blocks = 0, threads = 0;
  std::uint64_t block_barriers = 0, warp_ops = 0, switches = 0;
};

namespace detail {
inline Schedule parse_schedule(const char* s, std::uint64_t& seed) {
  std::string v(s);
  if (v == "reversed") return Schedule::reversed;
  if (v.rfind("random", 0) == 0) {
    if (v.size() > 7 && v[6] == ':') seed = std::strtoull(v.c_str() + 7, nullptr, 0);
    return Schedule::random;
  }
  return Schedule::in_order;
}
inline Options options_from_env() {
  Options o;
  if (const char* s = std::getenv("DEEPSHOCK_SIM_SCHEDULE")) o.schedule = parse_schedule(s, o.seed);
  if (const char* s = std::getenv("DEEPSHOCK_SIM_STACK_KB")) {
    const unsigned long kb = std::strtoul(s, nullptr, 10);
    if (kb >= 16) o.stack_bytes = kb * 1024;
  }
  return o;
}
}  // namespace detail

/// The settings in force. Initialised from the environment on first use.
inline Options& options() {
  static Options o = detail::options_from_env();
  return o;
}

namespace detail {
/// Launches since the settings were last replaced: the random schedule of the n-th launch after
/// `ScopedOptions(random, seed)` depends only on (seed, n), so a failing order can be replayed.
inline std::uint64_t& launches_since_options() {
  static std::uint64_t n = 0;
  return n;
}
}  // namespace detail

/// Replaces the settings for a scope (tests use it to run a kernel under every schedule).
class ScopedOptions {
 public:
  explicit ScopedOptions(Options o) : saved_(options()) {
    options() = o;
    detail::launches_since_options() = 0;
  }
  ScopedOptions(Schedule s, std::uint64_t seed = 0x5eedULL) : saved_(options()) {
    options().schedule = s;
    options().seed = seed;
    detail::launches_since_options() = 0;
  }
  ScopedOptions(const ScopedOptions&) = delete;
  ScopedOptions& operator=(const ScopedOptions&) = delete;
  ~ScopedOptions() {
    options() = saved_;
    detail::launches_since_options() = 0;
  }

 private:
  Options saved_;
};

inline const char* to_string(Schedule s) {
  switch (s) {
    case Schedule::in_order: return "in_order";
    case Schedule::reversed: return "reversed";
    case Schedule::random: return "random";
  }
  return "?";
}

namespace detail {
// Counters are bumped from simulated threads; relaxed atomics keep ThreadSanitizer quiet.
struct StatCounters {
  std::atomic<std::uint64_t> launches{0}, blocks{0}, threads{0}, block_barriers{0}, warp_ops{0}, switches{0};
};
inline StatCounters& counters() {
  static thread_local StatCounters c;
  return c;
}
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
}  // namespace detail

/// A snapshot of this OS thread's counters.
inline Stats stats() {
  const detail::StatCounters& c = detail::counters();
  return Stats{c.launches.load(), c.blocks.load(), c.threads.load(), c.block_barriers.load(), c.warp_ops.load(), c.switches.load()};
}
inline void reset_stats() {
  detail::StatCounters& c = detail::counters();
  for (auto* a : {&c.launches, &c.blocks, &c.threads, &c.block_barriers, &c.warp_ops, &c.switches}) a->store(0);
}

/// Thrown inside a simulated thread to abort the launch; surfaces as a Status.
class SimError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

enum class ThreadState : std::uint8_t { ready, waiting_block, waiting_warp, exited };

struct Block;

/// Computes a warp-synchronous operation once every lane of `mask` has arrived.
/// `lanes[l]` is lane l's thread (nullptr where the warp has no such lane).
struct Thread;
using WarpCompute = void (*)(Thread* const* lanes, unsigned mask);

struct Thread {
  FiberContext* fiber = nullptr;
  Block* block = nullptr;
  Dim3 tid;
  unsigned linear = 0, lane = 0, warp = 0;
  std::atomic<ThreadState> state{ThreadState::ready};
  int bar_pred = 0;
  // Warp-synchronous operation in flight.
  std::atomic<unsigned> pending_mask{0};
  WarpCompute compute = nullptr;
  const void* in = nullptr;
  void* out = nullptr;
};

struct Warp {
  unsigned exists = 0;                 ///< lanes this (possibly partial) warp has
  std::atomic<unsigned> exited{0};     ///< lanes that have returned
  Thread* lanes[32] = {};
  int hb = 0;                          ///< address for happens-before annotations
};

struct Block {
  Dim3 block_idx, block_dim, grid_dim;
  unsigned char* dyn_smem = nullptr;
  std::size_t dyn_smem_bytes = 0;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  std::atomic<int> live{0};
  std::atomic<int> arrived{0};
  int bar_count = 0;  ///< result of the last completed block barrier (count of true predicates)
  void (*body)(void*) = nullptr;
  void* body_ctx = nullptr;
  std::atomic<bool> failed{false};
  std::string error;
  int hb_barrier = 0;
};

struct Worker {
  SchedulerContext sched;
  std::vector<std::unique_ptr<FiberContext>> pool;
  std::size_t pool_stack_bytes = 0;
  std::atomic<Thread*> current{nullptr};
  Block block;
  bool in_launch = false;
  // Happens-before plumbing for ThreadSanitizer. The scheduler releases `hb_start` once per
  // block, before any of its fibers runs; fibers release `hb_yield` each time they hand the OS
  // thread back, and the scheduler acquires it. Edges thus run scheduler -> fibers at block
  // start and fibers -> scheduler at every switch, never fiber -> scheduler -> fiber within a
  // block, so TSan still sees the simulated threads of a block as concurrent.
  int hb_start = 0;
  int hb_yield = 0;
  Worker() { sched.init(); }
};

inline Worker& worker() {
  static thread_local Worker w;
  return w;
}

/// The simulated thread running now. Only valid inside a kernel.
inline Thread& current_thread() {
  Thread* t = worker().current.load(std::memory_order_relaxed);
  if (!t) throw SimError("a CUDA device intrinsic was called outside a simulated kernel");
  return *t;
}

[[noreturn]] inline void fail(const std::string& what) { throw SimError(what); }

inline std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

/// Gives the OS thread back to the scheduler until someone marks this thread ready.
inline void yield(Thread& t) {
  Worker& w = worker();
  hb_release(&w.hb_yield);
  switch_to_scheduler(w.sched, *t.fiber);
}

inline void complete_block_barrier(Block& b) {
  int count = 0;
  for (Thread& o : b.threads)
    if (o.state.load(std::memory_order_relaxed) == ThreadState::waiting_block) count += o.bar_pred != 0;
  b.bar_count = count;
  b.arrived.store(0, std::memory_order_relaxed);
  bump(counters().block_barriers);
  hb_release(&b.hb_barrier);
  for (Thread& o : b.threads)
    if (o.state.load(std::memory_order_relaxed) == ThreadState::waiting_block)
      o.state.store(ThreadState::ready, std::memory_order_relaxed);
}

/// `__syncthreads` and its counting variants. Returns the number of threads whose predicate
/// was non-zero. Threads that have exited count as arrived (as on hardware).
inline int block_barrier(int pred) {
  Thread& t = current_thread();
  Block& b = *t.block;
  t.bar_pred = pred;
  hb_release(&b.hb_barrier);
  t.state.store(ThreadState::waiting_block, std::memory_order_relaxed);
  const int arrived = b.arrived.fetch_add(1, std::memory_order_relaxed) + 1;
  if (arrived == b.live.load(std::memory_order_relaxed)) {
    hb_acquire(&b.hb_barrier);
    complete_block_barrier(b);
  } else {
    yield(t);
  }
  hb_acquire(&b.hb_barrier);
  return b.bar_count;
}

/// A warp-synchronous operation: publishes `in`/`out`, waits for every lane of `mask`, and the
/// last lane to arrive runs `compute` for all of them.
inline void warp_sync_op(unsigned mask, WarpCompute compute, const void* in, void* out, const char* name) {
  Thread& t = current_thread();
  Block& b = *t.block;
  Warp& w = b.warps[t.warp];
  const unsigned self = 1u << t.lane;
  if (!(mask & self))
    fail(std::string(name) + ": mask " + hex(mask) + " does not include the calling lane " + std::to_string(t.lane));
  if (mask & ~w.exists)
    fail(std::string(name) + ": mask " + hex(mask) + " names lanes that warp " + std::to_string(t.warp) +
         " does not have (block of " + std::to_string(b.threads.size()) + " threads)");
  if (const unsigned gone = mask & w.exited.load(std::memory_order_relaxed))
    fail(std::string(name) + ": mask " + hex(mask) + " includes lanes that have exited (" + hex(gone) + ")");
  t.compute = compute;
  t.in = in;
  t.out = out;
  hb_release(&w.hb);  // publishes this lane's operation to whichever lane completes the group
  t.pending_mask.store(mask, std::memory_order_relaxed);
  // Only atomics are read until the group is known to be complete: a lane that has not
  // arrived yet may be rewriting its own fields.
  bool complete = true;
  for (unsigned m = mask; m && complete; m &= m - 1)
    complete = w.lanes[__builtin_ctz(m)]->pending_mask.load(std::memory_order_relaxed) == mask;
  if (complete) {
    hb_acquire(&w.hb);
    for (unsigned m = mask; m; m &= m - 1) {
      const Thread* o = w.lanes[__builtin_ctz(m)];
      if (o->compute != compute)
        fail(std::string(name) + ": lanes " + std::to_string(t.lane) + " and " + std::to_string(o->lane) + " of warp " +
             std::to_string(t.warp) + " reached different warp-synchronous operations with mask " + hex(mask));
    }
    compute(w.lanes, mask);
    bump(counters().warp_ops);
    hb_release(&w.hb);
    for (unsigned m = mask; m; m &= m - 1) {
      Thread* o = w.lanes[__builtin_ctz(m)];
      o->pending_mask.store(0, std::memory_order_relaxed);
      if (o != &t) o->state.store(ThreadState::ready, std::memory_order_relaxed);
    }
  } else {
    t.state.store(ThreadState::waiting_warp, std::memory_order_relaxed);
    yield(t);
    hb_acquire(&w.hb);
  }
}

/// `__nanosleep`: lets the other threads of the block run.
inline void sleep_yield() {
  Thread& t = current_thread();
  t.state.store(ThreadState::ready, std::memory_order_relaxed);
  yield(t);
}

inline void record_error(Block& b, const std::string& what) {
  if (!b.failed.load(std::memory_order_relaxed)) {
    b.error = what;
    b.failed.store(true, std::memory_order_relaxed);
  }
}

inline void exit_thread(Thread& t) {
  Block& b = *t.block;
  Warp& w = b.warps[t.warp];
  const unsigned self = 1u << t.lane;
  t.state.store(ThreadState::exited, std::memory_order_relaxed);
  w.exited.fetch_or(self, std::memory_order_relaxed);
  for (unsigned m = w.exists & ~self; m; m &= m - 1) {
    Thread* o = w.lanes[__builtin_ctz(m)];
    if (o->pending_mask.load(std::memory_order_relaxed) & self)
      record_error(b, "lane " + std::to_string(t.lane) + " of warp " + std::to_string(t.warp) +
                          " exited while lane " + std::to_string(o->lane) + " waits for it in a warp-synchronous op (mask " +
                          hex(o->pending_mask.load(std::memory_order_relaxed)) + ")");
  }
  const int live = b.live.fetch_sub(1, std::memory_order_relaxed) - 1;
  const int arrived = b.arrived.load(std::memory_order_relaxed);
  if (arrived > 0 && arrived == live) {
    hb_acquire(&b.hb_barrier);
    complete_block_barrier(b);
  }
}

inline void fiber_entry(bctx::transfer_t t) {
  Worker& w = worker();
  fiber_started(w.sched, t);
  hb_acquire(&w.hb_start);
  Thread& th = *w.current.load(std::memory_order_relaxed);
  Block& b = *th.block;
  try {
    b.body(b.body_ctx);
  } catch (const std::exception& e) {
    record_error(b, std::string("thread (") + std::to_string(th.tid.x) + "," + std::to_string(th.tid.y) + "," +
                        std::to_string(th.tid.z) + "): " + e.what());
  } catch (...) {
    record_error(b, "a simulated thread threw a non-standard exception");
  }
  exit_thread(th);
  hb_release(&w.hb_yield);
  finish_fiber(w.sched);
}

inline std::string describe_deadlock(const Block& b) {
  std::string s = "deadlock: no simulated thread can proceed;";
  int shown = 0;
  for (const Thread& t : b.threads) {
    const ThreadState st = t.state.load(std::memory_order_relaxed);
    if (st == ThreadState::exited) continue;
    if (shown++ == 8) { s += " ..."; break; }
    s += " thread " + std::to_string(t.linear) +
         (st == ThreadState::waiting_block ? " waits at __syncthreads;"
                                           : " waits in a warp op with mask " + hex(t.pending_mask.load()) + ";");
  }
  return s;
}

/// Runs one block to completion (or failure) on the calling OS thread.
inline void run_block(Worker& w, Block& b, std::mt19937_64& rng, Schedule schedule) {
  const unsigned n = static_cast<unsigned>(b.threads.size());
  b.live.store(static_cast<int>(n), std::memory_order_relaxed);
  b.arrived.store(0, std::memory_order_relaxed);
  for (Warp& wp : b.warps) wp.exited.store(0, std::memory_order_relaxed);
  for (unsigned i = 0; i < n; ++i) {
    Thread& t = b.threads[i];
    t.state.store(ThreadState::ready, std::memory_order_relaxed);
    t.pending_mask.store(0, std::memory_order_relaxed);
    t.fiber->reset(&fiber_entry);
  }
  hb_release(&w.hb_start);
  std::vector<unsigned> ready;
  ready.reserve(n);
  while (b.live.load(std::memory_order_relaxed) > 0 && !b.failed.load(std::memory_order_relaxed)) {
    ready.clear();
    for (unsigned i = 0; i < n; ++i)
      if (b.threads[i].state.load(std::memory_order_relaxed) == ThreadState::ready) ready.push_back(i);
    if (ready.empty()) {
      record_error(b, describe_deadlock(b));
      break;
    }
    if (schedule == Schedule::reversed) std::reverse(ready.begin(), ready.end());
    if (schedule == Schedule::random) std::shuffle(ready.begin(), ready.end(), rng);
    for (unsigned i : ready) {
      Thread& t = b.threads[i];
      if (t.state.load(std::memory_order_relaxed) != ThreadState::ready) continue;
      w.current.store(&t, std::memory_order_relaxed);
      switch_to_fiber(w.sched, *t.fiber, nullptr);
      hb_acquire(&w.hb_yield);
      bump(counters().switches);
      if (b.failed.load(std::memory_order_relaxed)) break;
    }
  }
  w.current.store(nullptr, std::memory_order_relaxed);
}

/// Resets the worker's reusable block for a launch with `block` threads.
inline void prepare_block(Worker& w, Dim3 block) {
  const unsigned n = block.x * block.y * block.z;
  const std::size_t stack = options().stack_bytes;
  if (w.pool_stack_bytes != stack) { w.pool.clear(); w.pool_stack_bytes = stack; }
  while (w.pool.size() < n) w.pool.push_back(std::make_unique<FiberContext>(stack));
  Block& b = w.block;
  b.block_dim = block;
  if (b.threads.size() != n) {
    b.threads = std::vector<Thread>(n);
    b.warps = std::vector<Warp>((n + 31) / 32);
  }
  for (Warp& wp : b.warps) { wp.exists = 0; std::fill(std::begin(wp.lanes), std::end(wp.lanes), nullptr); }
  for (unsigned i = 0; i < n; ++i) {
    Thread& t = b.threads[i];
    t.fiber = w.pool[i].get();
    t.block = &b;
    t.linear = i;
    t.tid = Dim3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    t.lane = i % 32;
    t.warp = i / 32;
    b.warps[t.warp].exists |= 1u << t.lane;
    b.warps[t.warp].lanes[t.lane] = &t;
  }
}

}  // namespace detail

/// Runs `body(ctx)` as every thread of a grid of `grid` blocks of `block` threads with
/// `smem_bytes` of dynamic shared memory. Validates the configuration as CUDA does.
inline Status launch(Dim3 grid, Dim3 block, std::size_t smem_bytes, void (*body)(void*), void* ctx) {
  using detail::Worker;
  const std::uint64_t nthreads = std::uint64_t(block.x) * block.y * block.z;
  if (nthreads == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0)
    return Status::invalid_argument("grid/block", "every launch dimension must be at least 1");
  if (nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
    return Status::invalid_argument("block", "at most 1024 threads per block (x, y <= 1024, z <= 64)");
  if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return Status::invalid_argument("grid", "grid extents exceed (2^31-1, 65535, 65535)");
  if (smem_bytes > options().max_dynamic_smem)
    return Status::invalid_argument("smem_bytes", std::to_string(smem_bytes) + " bytes of dynamic shared memory exceed the limit of " +
                                                      std::to_string(options().max_dynamic_smem));
  Worker& w = detail::worker();
  if (w.in_launch) return Status::unsupported("simulator: launching a kernel from inside a simulated kernel");
  struct Guard {
    Worker& w;
    unsigned char* smem = nullptr;
    ~Guard() { w.in_launch = false; std::free(smem); }
  } guard{w};
  w.in_launch = true;
  try {
    detail::prepare_block(w, block);
  } catch (const std::bad_alloc&) {
    return Status::resource_exhausted("block", "simulator could not allocate fiber stacks");
  }
  if (smem_bytes) {
    guard.smem = static_cast<unsigned char*>(std::malloc(smem_bytes));
    if (!guard.smem) return Status::resource_exhausted("smem_bytes", "simulator could not allocate shared memory");
  }
  const Schedule schedule = options().schedule;
  std::mt19937_64 rng(options().seed ^ (0x9E3779B97F4A7C15ULL * ++detail::launches_since_options()));
  const std::uint64_t nblocks = std::uint64_t(grid.x) * grid.y * grid.z;
  std::vector<std::uint64_t> order(nblocks);
  std::iota(order.begin(), order.end(), std::uint64_t{0});
  if (schedule == Schedule::reversed) std::reverse(order.begin(), order.end());
  if (schedule == Schedule::random) std::shuffle(order.begin(), order.end(), rng);
  detail::Block& b = w.block;
  b.grid_dim = grid;
  b.body = body;
  b.body_ctx = ctx;
  b.dyn_smem = guard.smem;
  b.dyn_smem_bytes = smem_bytes;
  b.failed.store(false, std::memory_order_relaxed);
  b.error.clear();
  detail::bump(detail::counters().launches);
  for (std::uint64_t id : order) {
    b.block_idx = Dim3{unsigned(id % grid.x), unsigned((id / grid.x) % grid.y), unsigned(id / (std::uint64_t(grid.x) * grid.y))};
    if (guard.smem) std::memset(guard.smem, 0xFF, smem_bytes);
    detail::run_block(w, b, rng, schedule);
    detail::bump(detail::counters().blocks);
    detail::bump(detail::counters().threads, nthreads);
    if (b.failed.load(std::memory_order_relaxed))
      return Status::runtime_error("simulator: block (" + std::to_string(b.block_idx.x) + "," + std::to_string(b.block_idx.y) +
                                   "," + std::to_string(b.block_idx.z) + "): " + b.error);
  }
  return Status::success();
}

}  // namespace deepshock::sim
