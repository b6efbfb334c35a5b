// deepshock/sim/engine.hpp — the SIMT simulator's execution engine.
//
// A grid runs block by block on the calling OS thread. Each block's threads are fibers that
// run cooperatively: a fiber runs until it reaches a block barrier (`__syncthreads`), a
// warp-synchronous operation (shuffles, votes, match, reduce, `__syncwarp`, the mma model) or
// `__nanosleep`, then yields. Asynchronous copies (cp.async) complete at the issuing thread's
// wait; until then their destination holds poison (see "cp.async model" below). A barrier completes when every live thread (warp op: every lane of
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
  /// Set when the environment asked for something unknown; every launch then fails with it,
  /// so a typo cannot silently drop schedule coverage.
  std::string config_error;
};

/// Counters since the last reset (per OS thread).
struct Stats {
  std::uint64_t launches = 0, blocks = 0, threads = 0;
  std::uint64_t block_barriers = 0, warp_ops = 0, switches = 0;
};

namespace detail {
/// Parses "in_order", "reversed", "random" or "random:<seed>"; false if it is none of them.
inline bool parse_schedule(const std::string& v, Schedule& schedule, std::uint64_t& seed) {
  if (v == "in_order") { schedule = Schedule::in_order; return true; }
  if (v == "reversed") { schedule = Schedule::reversed; return true; }
  if (v == "random") { schedule = Schedule::random; return true; }
  if (v.rfind("random:", 0) == 0 && v.size() > 7) {
    char* end = nullptr;
    const std::uint64_t s = std::strtoull(v.c_str() + 7, &end, 0);
    if (*end != '\0') return false;
    schedule = Schedule::random;
    seed = s;
    return true;
  }
  return false;
}
inline Options options_from_env() {
  Options o;
  if (const char* s = std::getenv("DEEPSHOCK_SIM_SCHEDULE"))
    if (!parse_schedule(s, o.schedule, o.seed))
      o.config_error = std::string("DEEPSHOCK_SIM_SCHEDULE: '") + s + "' is not in_order, reversed, random or random:<seed>";
  if (const char* s = std::getenv("DEEPSHOCK_SIM_STACK_KB")) {
    char* end = nullptr;
    const unsigned long kb = std::strtoul(s, &end, 10);
    if (*end != '\0' || kb < 16) o.config_error = std::string("DEEPSHOCK_SIM_STACK_KB: '") + s + "' is not a number >= 16";
    else o.stack_bytes = kb * 1024;
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
/// Launches on this OS thread since the settings were last replaced (or a scope ended): the
/// random schedule of the n-th such launch depends only on (seed, n), so a failing order can be
/// replayed. (The permutation itself comes from std::shuffle: replay with the same standard
/// library.)
inline std::uint64_t& launches_since_options() {
  static thread_local std::uint64_t n = 0;
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
  std::atomic<int> bar_pred{0};  ///< read by whichever thread completes the barrier
  // Warp-synchronous operation in flight.
  std::atomic<unsigned> pending_mask{0};
  WarpCompute compute = nullptr;
  const void* in = nullptr;
  void* out = nullptr;
  // TSan: a lane releases `hb_arrive` when it arrives at a warp op; the lane that completes
  // the group acquires every participant's `hb_arrive` and releases each waiter's `hb_wake`.
  int hb_arrive = 0, hb_wake = 0;
  // cp.async model (see async_copy): copies issued and not yet completed by a wait. Copies
  // issued after the last commit carry group `async_committed` (not waited for by wait_group).
  struct AsyncCopy {
    void* dst;
    unsigned char data[16];
    unsigned bytes;
    unsigned group;
  };
  std::vector<AsyncCopy> async_copies;
  unsigned async_committed = 0;
  // wgmma model (platform/wgmma.hpp): asynchronous warpgroup MMAs issued and not yet completed.
  // `operands` are the shared-memory values this thread's part read at the issue and `out` its
  // result; the wait gathers the operands again and fails the launch if they changed while the
  // instruction was in flight, then writes `out` to the registers at `d`.
  struct AsyncMma {
    float* d;
    const void* a;
    const void* b;
    unsigned group;
    void (*gather)(const AsyncMma&, unsigned linear, float* operands);
    std::vector<float> operands, out;
  };
  std::vector<AsyncMma> async_mmas;
  unsigned mma_committed = 0;
};

struct Warp {
  unsigned exists = 0;                 ///< lanes this (possibly partial) warp has
  std::atomic<unsigned> exited{0};     ///< lanes that have returned
  Thread* lanes[32] = {};
};

struct Block {
  Dim3 block_idx, block_dim, grid_dim;
  unsigned char* dyn_smem = nullptr;
  std::size_t dyn_smem_bytes = 0;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  std::atomic<int> live{0};
  std::atomic<int> arrived{0};
  std::atomic<unsigned> bar_gen{0};     ///< completed block barriers
  std::atomic<int> bar_count{0};        ///< last completed barrier: threads with a true predicate
  std::atomic<int> bar_waiters{0};      ///< last completed barrier: threads that took part
  // TSan: arrivals at barrier generation g release hb_gen[g % 2], its waiters acquire it. Two
  // slots suffice: nobody reaches generation g+2 before everyone has left generation g. One slot
  // would hand a slow thread the writes that fast threads made *after* the barrier.
  void (*body)(void*) = nullptr;
  void* body_ctx = nullptr;
  std::atomic<bool> failed{false};
  std::string error;
  int hb_gen[2] = {0, 0};
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

/// Run by the thread whose arrival (or exit) completes the barrier.
inline void complete_block_barrier(Block& b) {
  int count = 0, waiters = 0;
  for (Thread& o : b.threads)
    if (o.state.load(std::memory_order_relaxed) == ThreadState::waiting_block) {
      ++waiters;
      count += o.bar_pred.load(std::memory_order_relaxed) != 0;
    }
  b.bar_count.store(count, std::memory_order_relaxed);
  b.bar_waiters.store(waiters, std::memory_order_relaxed);
  b.arrived.store(0, std::memory_order_relaxed);
  b.bar_gen.fetch_add(1, std::memory_order_relaxed);
  bump(counters().block_barriers);
  for (Thread& o : b.threads)
    if (o.state.load(std::memory_order_relaxed) == ThreadState::waiting_block)
      o.state.store(ThreadState::ready, std::memory_order_relaxed);
}

struct BarrierResult {
  int count;    ///< threads whose predicate was non-zero
  int waiters;  ///< threads that reached the barrier (exited threads excluded)
};

/// `__syncthreads` and its counting variants. Threads that have exited count as arrived (as on
/// hardware) and are left out of the predicate counts.
inline BarrierResult block_barrier(int pred) {
  Thread& t = current_thread();
  Block& b = *t.block;
  t.bar_pred.store(pred, std::memory_order_relaxed);
  int* slot = &b.hb_gen[b.bar_gen.load(std::memory_order_relaxed) & 1u];
  hb_release(slot);
  t.state.store(ThreadState::waiting_block, std::memory_order_relaxed);
  const int arrived = b.arrived.fetch_add(1, std::memory_order_relaxed) + 1;
  if (arrived == b.live.load(std::memory_order_relaxed)) {
    hb_acquire(slot);
    complete_block_barrier(b);
  } else {
    yield(t);
    hb_acquire(slot);
  }
  return {b.bar_count.load(std::memory_order_relaxed), b.bar_waiters.load(std::memory_order_relaxed)};
}

/// Lanes of `mask` that take part: lanes the warp has that have not exited. CUDA requires only
/// the non-exited threads named in a mask to execute the operation, so `if (i >= n) return;`
/// before a full-mask shuffle is legal; reading from a missing lane yields undefined data
/// (the simulator returns all-ones bits).
inline unsigned participants(const Warp& w, unsigned mask) {
  return mask & w.exists & ~w.exited.load(std::memory_order_relaxed);
}

/// Completes the operation that lanes wait in with `mask` if every participant has arrived.
/// `self` is the calling lane (it continues without yielding), or nullptr when a lane's exit
/// is what completes the group. Returns false if some participant has not arrived yet.
inline bool try_complete_warp_op(Warp& w, unsigned mask, const Thread* self, const char* name) {
  const unsigned eff = participants(w, mask);
  if (eff == 0) return false;
  for (unsigned m = eff; m; m &= m - 1)
    if (w.lanes[__builtin_ctz(m)]->pending_mask.load(std::memory_order_relaxed) != mask) return false;
  WarpCompute compute = nullptr;
  for (unsigned m = eff; m; m &= m - 1) {
    Thread* o = w.lanes[__builtin_ctz(m)];
    hb_acquire(&o->hb_arrive);
    if (!compute) compute = o->compute;
    if (o->compute != compute)
      fail(std::string(name) + ": lanes of warp " + std::to_string(o->warp) +
           " reached different warp-synchronous operations with mask " + hex(mask));
  }
  compute(w.lanes, eff);
  bump(counters().warp_ops);
  for (unsigned m = eff; m; m &= m - 1) {
    Thread* o = w.lanes[__builtin_ctz(m)];
    o->pending_mask.store(0, std::memory_order_relaxed);
    if (o != self) {
      hb_release(&o->hb_wake);
      o->state.store(ThreadState::ready, std::memory_order_relaxed);
    }
  }
  return true;
}

/// A warp-synchronous operation: publishes `in`/`out`, waits for every participating lane of
/// `mask`, and the last to arrive runs `compute(lanes, participants)` for all of them.
inline void warp_sync_op(unsigned mask, WarpCompute compute, const void* in, void* out, const char* name) {
  Thread& t = current_thread();
  Warp& w = t.block->warps[t.warp];
  if (!(mask & (1u << t.lane)))
    fail(std::string(name) + ": mask " + hex(mask) + " does not include the calling lane " + std::to_string(t.lane));
  t.compute = compute;
  t.in = in;
  t.out = out;
  hb_release(&t.hb_arrive);
  t.pending_mask.store(mask, std::memory_order_relaxed);
  if (try_complete_warp_op(w, mask, &t, name)) return;
  t.state.store(ThreadState::waiting_warp, std::memory_order_relaxed);
  yield(t);
  hb_acquire(&t.hb_wake);
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
  // Lanes waiting for this one in a warp op no longer need to: their group may now be complete.
  for (unsigned m = w.exists & ~self; m; m &= m - 1) {
    Thread* o = w.lanes[__builtin_ctz(m)];
    const unsigned pending = o->pending_mask.load(std::memory_order_relaxed);
    if (pending & self) {
      try {
        try_complete_warp_op(w, pending, nullptr, "warp-synchronous op");
      } catch (const std::exception& e) {
        record_error(b, e.what());
      }
    }
  }
  const int live = b.live.fetch_sub(1, std::memory_order_relaxed) - 1;
  const int arrived = b.arrived.load(std::memory_order_relaxed);
  if (arrived > 0 && arrived == live) {
    hb_acquire(&b.hb_gen[b.bar_gen.load(std::memory_order_relaxed) & 1u]);
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

// ---- cp.async model --------------------------------------------------------------------------
// An asynchronous global -> shared copy's destination is undefined from the issue until a wait
// covers it. The model makes that visible: the issue writes 0xFF bytes (NaN for every float
// type) to the destination and remembers the source bytes; the wait that completes the copy's
// group writes them. A kernel that reads a stage before waiting for it, or that overwrites a
// stage other threads still read (a missing barrier), thus computes with poison.

/// Issues a copy of `bytes` (4, 8 or 16) from `src` to `dst`; only the first `src_bytes` are
/// read, the rest of the destination is zero-filled (cp.async's src-size operand).
inline void async_copy(void* dst, const void* src, unsigned bytes, unsigned src_bytes) {
  Thread& t = current_thread();
  if (bytes != 4 && bytes != 8 && bytes != 16) fail("cp.async: the copy size must be 4, 8 or 16 bytes");
  if (src_bytes > bytes) fail("cp.async: src-size exceeds the copy size");
  if (reinterpret_cast<std::uintptr_t>(dst) % bytes != 0 || (src_bytes > 0 && reinterpret_cast<std::uintptr_t>(src) % bytes != 0))
    fail("cp.async: addresses must be aligned to the copy size");
  Thread::AsyncCopy c{dst, {}, bytes, t.async_committed};
  if (src_bytes > 0) std::memcpy(c.data, src, src_bytes);
  std::memset(c.data + src_bytes, 0, bytes - src_bytes);
  std::memset(dst, 0xFF, bytes);
  t.async_copies.push_back(c);
}

/// cp.async.commit_group: the copies issued since the last commit form one group.
inline void async_commit() { ++current_thread().async_committed; }

/// cp.async.wait_group n: completes every committed group except the newest `n`
/// (cp.async.wait_all: `all` also completes the copies not yet committed).
inline void async_wait(unsigned n, bool all = false) {
  Thread& t = current_thread();
  const unsigned limit = all ? ~0u : (t.async_committed > n ? t.async_committed - n : 0u);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < t.async_copies.size(); ++i) {
    const Thread::AsyncCopy& c = t.async_copies[i];
    if (c.group < limit) std::memcpy(c.dst, c.data, c.bytes);
    else t.async_copies[kept++] = c;
  }
  t.async_copies.resize(kept);
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
    t.async_copies.clear();
    t.async_committed = 0;
    t.async_mmas.clear();
    t.mma_committed = 0;
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
  if (!options().config_error.empty()) return Status::invalid_argument("simulator options", options().config_error);
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
  // Block order: computed on the fly in order or reversed; a shuffled list for random.
  std::vector<std::uint64_t> order;
  if (schedule == Schedule::random) {
    try {
      order.resize(nblocks);
    } catch (const std::exception&) {
      return Status::resource_exhausted("grid", "too many blocks (" + std::to_string(nblocks) + ") for a random block order");
    }
    std::iota(order.begin(), order.end(), std::uint64_t{0});
    std::shuffle(order.begin(), order.end(), rng);
  }
  detail::Block& b = w.block;
  b.grid_dim = grid;
  b.body = body;
  b.body_ctx = ctx;
  b.dyn_smem = guard.smem;
  b.dyn_smem_bytes = smem_bytes;
  b.failed.store(false, std::memory_order_relaxed);
  b.error.clear();
  detail::bump(detail::counters().launches);
  for (std::uint64_t i = 0; i < nblocks; ++i) {
    const std::uint64_t id = schedule == Schedule::random ? order[i] : schedule == Schedule::reversed ? nblocks - 1 - i : i;
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
