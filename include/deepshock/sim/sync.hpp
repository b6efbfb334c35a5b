// deepshock/sim/sync.hpp — simulated threads and their synchronisation: block barriers, warp-
// synchronous operations, polls, the cp.async model. The scheduler that resumes the threads is
// in engine.hpp.
//
// Each simulated thread is a fiber. It runs until it reaches a block barrier (`__syncthreads`),
// a warp-synchronous operation (shuffles, votes, match, reduce, `__syncwarp`, the mma model),
// `__nanosleep` or an atomic that polls (leaves memory as it was), then yields. A barrier
// completes when every live thread (warp op: every lane of the mask) has arrived; the last to
// arrive computes the result and wakes the others.
//
// Checks that turn undefined behaviour on a GPU into a Status:
//  - a block barrier at which threads arrive from different call sites (divergent
//    `__syncthreads`: a hang or a wrong result on a GPU) fails naming both source locations;
//  - warp ops whose lanes disagree on the mask or the operation, a mask without the calling
//    lane, and (cuda_shim.hpp) a shuffle that reads a lane that has exited.
//
// Progress: the engine counts events after which some waiting thread may proceed (a barrier or
// warp op completes, a thread exits, an atomic changes memory). Rounds in which every thread
// only polled or slept, and nothing changed, are how it recognises a livelock.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <source_location>
#include <string>
#include <type_traits>
#include <vector>

#include "deepshock/sim/fiber.hpp"
#include "deepshock/sim/options.hpp"

namespace deepshock::sim {
namespace detail {

enum class ThreadState : std::uint8_t { ready, waiting_block, waiting_warp, exited };

struct Block;

/// Where a thread waits at a block barrier (the `__syncthreads` call site).
using Site = std::source_location;
inline std::string describe_site(const Site& s) {
  return std::string(s.file_name()) + ":" + std::to_string(s.line()) + ":" + std::to_string(s.column()) + " (" + s.function_name() + ")";
}

/// A block's current barrier site: written by its first arriving thread, read by the others
/// (relaxed atomics: the simulator's bookkeeping is no data race for ThreadSanitizer). A
/// std::source_location is one pointer to its call site's static data, so one word compares
/// the common case; equal text from another pointer (a template instantiated twice) is the
/// same site too.
struct BarrierSite {
  static_assert(sizeof(Site) == sizeof(std::uintptr_t) && std::is_trivially_copyable_v<Site>, "source_location is one pointer");
  std::atomic<std::uintptr_t> bits{0};
  std::atomic<unsigned> thread{0};
  void store(const Site& s, unsigned by) {
    bits.store(std::bit_cast<std::uintptr_t>(s), std::memory_order_relaxed);
    thread.store(by, std::memory_order_relaxed);
  }
  Site site() const { return std::bit_cast<Site>(bits.load(std::memory_order_relaxed)); }
  bool same(const Site& s) const {
    if (bits.load(std::memory_order_relaxed) == std::bit_cast<std::uintptr_t>(s)) return true;
    const Site o = site();
    return o.line() == s.line() && o.column() == s.column() && std::strcmp(o.file_name(), s.file_name()) == 0;
  }
};

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
  Site bar_site;                 ///< where it waits (valid while waiting_block)
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
  unsigned exists = 0;              ///< lanes this (possibly partial) warp has
  std::atomic<unsigned> exited{0};  ///< lanes that have returned
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
  std::atomic<unsigned> bar_gen{0};  ///< completed block barriers
  std::atomic<int> bar_count{0};     ///< last completed barrier: threads with a true predicate
  std::atomic<int> bar_waiters{0};   ///< last completed barrier: threads that took part
  BarrierSite bar_site;              ///< the barrier's call site: where its first thread arrived
  // TSan: arrivals at barrier generation g release hb_gen[g % 2], its waiters acquire it. Two
  // slots suffice: nobody reaches generation g+2 before everyone has left generation g. One slot
  // would hand a slow thread the writes that fast threads made *after* the barrier.
  void (*body)(void*) = nullptr;
  void* body_ctx = nullptr;
  std::atomic<bool> failed{false};
  std::string error;
  int hb_gen[2] = {0, 0};
  // The engine's slot: fibers, dynamic shared memory and (several resident blocks) this block's
  // image of the static shared variables (static_smem.hpp).
  std::vector<std::unique_ptr<FiberContext>> fibers;
  std::unique_ptr<unsigned char[]> dyn_smem_owner;
  std::vector<unsigned char> smem_image;
  bool resident = false;
};

struct Worker {
  SchedulerContext sched;
  std::size_t stack_bytes = 0;  ///< of every slot's fibers
  std::atomic<Thread*> current{nullptr};
  std::vector<std::unique_ptr<Block>> slots;  ///< resident blocks (engine.hpp)
  Block* smem_owner = nullptr;                ///< whose static shared image the TLS holds now
  std::atomic<std::uint64_t> progress{0};     ///< see the file comment
  bool in_launch = false;
  // Happens-before plumbing for ThreadSanitizer. The scheduler releases `hb_start` once per
  // block, before any of its fibers runs; fibers release `hb_yield` each time they hand the OS
  // thread back, and the scheduler acquires it. Edges thus run scheduler -> fibers at block
  // start and fibers -> scheduler at every switch, never fiber -> scheduler -> fiber within a
  // block, so TSan still sees the simulated threads of a block as concurrent.
  int hb_start = 0;
  int hb_yield = 0;
  // With several resident blocks the scheduler rewrites the static shared variables when it
  // switches blocks (engine.hpp) and releases `hb_swap`; every fiber acquires it when resumed.
  // That orders a block's accesses after the rewrite of its image, and also after whatever
  // happened before the switch: under TSan, races across a switch of blocks go unreported.
  int hb_swap = 0;
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
  hb_acquire(&w.hb_swap);
}

/// Something a waiting thread may have waited for happened (see the file comment).
inline void note_progress() { worker().progress.fetch_add(1, std::memory_order_relaxed); }

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
  note_progress();
  for (Thread& o : b.threads)
    if (o.state.load(std::memory_order_relaxed) == ThreadState::waiting_block) o.state.store(ThreadState::ready, std::memory_order_relaxed);
}

struct BarrierResult {
  int count;    ///< threads whose predicate was non-zero
  int waiters;  ///< threads that reached the barrier (exited threads excluded)
};

/// Fails the launch: thread `t` arrives at `site`, another thread waits at `first`. Out of line,
/// so that the barrier's hot path stays small.
[[noreturn, gnu::noinline, gnu::cold]] inline void divergent_barrier(const Thread& t, const BarrierSite& first, const Site& site) {
  fail("divergent __syncthreads: thread " + std::to_string(t.linear) + " arrives at " + describe_site(site) + " while thread " +
       std::to_string(first.thread.load(std::memory_order_relaxed)) + " waits at " + describe_site(first.site()) +
       "; every thread of a block must reach the same barrier (undefined on a GPU: a hang or a wrong result)");
}

/// `__syncthreads` and its counting variants, called at `site`. Threads that have exited count
/// as arrived (as on hardware) and are left out of the predicate counts. Every thread of a
/// barrier must arrive from the same call site; a barrier in a loop is one site, whatever the
/// iteration.
inline BarrierResult block_barrier(int pred, const Site& site) {
  Thread& t = current_thread();
  Block& b = *t.block;
  if (b.arrived.load(std::memory_order_relaxed) == 0) b.bar_site.store(site, t.linear);
  else if (!b.bar_site.same(site)) divergent_barrier(t, b.bar_site, site);
  t.bar_site = site;
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
inline unsigned participants(const Warp& w, unsigned mask) { return mask & w.exists & ~w.exited.load(std::memory_order_relaxed); }

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
      fail(std::string(name) + ": lanes of warp " + std::to_string(o->warp) + " reached different warp-synchronous operations with mask " +
           hex(mask));
  }
  compute(w.lanes, eff);
  bump(counters().warp_ops);
  note_progress();
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

/// `__nanosleep`: lets the other threads (of every resident block) run.
inline void sleep_yield() {
  Thread& t = current_thread();
  t.state.store(ThreadState::ready, std::memory_order_relaxed);
  yield(t);
}

/// After an atomic: one that changed memory is progress; one that left it as it was (a CAS
/// that failed, an add of 0: a poll) lets the other threads run, so that a spin loop on a flag
/// that another thread or block sets gets there. Outside a kernel it does nothing.
inline void atomic_done(bool changed) {
  Worker& w = worker();
  if (changed) {
    w.progress.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Thread* t = w.current.load(std::memory_order_relaxed);
  if (!t) return;
  t->state.store(ThreadState::ready, std::memory_order_relaxed);
  yield(*t);
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
  note_progress();
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
  hb_acquire(&w.hb_swap);
  Thread& th = *w.current.load(std::memory_order_relaxed);
  Block& b = *th.block;
  try {
    b.body(b.body_ctx);
  } catch (const std::exception& e) {
    record_error(b, std::string("thread (") + std::to_string(th.tid.x) + "," + std::to_string(th.tid.y) + "," + std::to_string(th.tid.z) +
                        "): " + e.what());
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
    if (shown++ == 8) {
      s += " ...";
      break;
    }
    s += " thread " + std::to_string(t.linear) +
         (st == ThreadState::waiting_block ? " waits at __syncthreads " + describe_site(t.bar_site) + ";"
                                           : " waits in a warp op with mask " + hex(t.pending_mask.load()) + ";");
  }
  return s;
}

}  // namespace detail
}  // namespace deepshock::sim
