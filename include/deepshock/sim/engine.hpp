// deepshock/sim/engine.hpp — the SIMT simulator's execution engine: runs a grid's blocks.
//
// All of a launch runs on the calling OS thread. Up to `Options::resident_blocks` blocks are
// resident at once (DEEPSHOCK_SIM_RESIDENT_BLOCKS, default 1); each has its own fibers (one per
// thread, sync.hpp), dynamic shared memory and static shared variables (static_smem.hpp). The
// engine works in rounds: in a round a block resumes each of its ready threads once, and a
// thread runs until it yields at a synchronisation point. With one resident block, blocks run
// one after another; with more, resident blocks take turns of a few rounds each (a turn ends
// early when the block only polls), so the threads of different blocks interleave and a block can
// wait for another resident block (a spin on its flag, a grid-wide counter, stream-K's tickets
// and "the last block to arrive sums") as on a GPU. A retired block's slot takes the grid's next
// block, as a GPU's block scheduler does.
//
// The order in which blocks take slots, blocks take turns and ready threads resume is the
// *schedule*: in order, reversed, or seeded random (DEEPSHOCK_SIM_SCHEDULE=in_order|reversed|
// random[:seed], or `sim::ScopedOptions`). A race that a fixed order hides usually shows under
// another one.
//
// Before every block its dynamic shared memory and its static shared variables are filled with
// 0xFF bytes (NaN in every float type). When a block ends, the canaries behind its static shared
// variables are checked, and after the launch those behind every device allocation
// (device_memory.hpp); under AddressSanitizer both are poisoned redzones instead.
//
// Errors end the launch and come back as a Status from `launch`: a deadlock (no thread of a
// block can proceed: all wait at barriers or warp ops), a livelock (kLivelockRounds rounds in a
// row in which threads only polled or slept and nothing changed: e.g. a block waits for a block
// that can never be resident), divergent barriers, bad warp masks, reads of exited lanes,
// overrun canaries, a throw or `__trap()` in a kernel.
//
// Limits (by design): memory is sequentially consistent and fences are no-ops with respect to
// ordering, so a missing `__threadfence` between a block's data and its flag is not found (a
// GPU run is the final word); a thread yields only at synchronisation points and polls, so a
// spin loop must poll with an atomic or `__nanosleep` (a plain volatile read never yields);
// blocks interleave at the granularity of one thread step; under ThreadSanitizer a switch
// between resident blocks orders everything before it (Worker::hb_swap), so races across such
// a switch go unreported; a failed block's suspended fibers are abandoned without unwinding
// their stacks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/sim/device_memory.hpp"
#include "deepshock/sim/options.hpp"
#include "deepshock/sim/static_smem.hpp"
#include "deepshock/sim/sync.hpp"

namespace deepshock::sim {

namespace detail {

/// Rounds in a row without progress (sync.hpp) after which a launch fails as a livelock. Every
/// round resumes each ready thread once, so a spin loop gets this many polls to see a change.
inline constexpr std::uint64_t kLivelockRounds = 20000;

/// Rounds of one block's threads per turn with several resident blocks (in order / reversed),
/// and the largest such budget a random schedule draws.
inline constexpr unsigned kTurnRounds = 16, kMaxTurnRounds = 32;

inline std::string block_name(const Dim3& b) {
  return "(" + std::to_string(b.x) + "," + std::to_string(b.y) + "," + std::to_string(b.z) + ")";
}

/// Sizes slot `b` for blocks of `block` threads with `smem_bytes` of dynamic shared memory.
inline void prepare_slot(Worker& w, Block& b, Dim3 block, std::size_t smem_bytes, bool own_image) {
  const unsigned n = block.x * block.y * block.z;
  if (b.fibers.size() > 0 && b.fibers[0]->stack.size() < w.stack_bytes) b.fibers.clear();
  while (b.fibers.size() < n) b.fibers.push_back(std::make_unique<FiberContext>(w.stack_bytes));
  b.block_dim = block;
  if (b.threads.size() != n) {
    b.threads = std::vector<Thread>(n);
    b.warps = std::vector<Warp>((n + 31) / 32);
  }
  for (Warp& wp : b.warps) {
    wp.exists = 0;
    std::fill(std::begin(wp.lanes), std::end(wp.lanes), nullptr);
  }
  for (unsigned i = 0; i < n; ++i) {
    Thread& t = b.threads[i];
    t.fiber = b.fibers[i].get();
    t.block = &b;
    t.linear = i;
    t.tid = Dim3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    t.lane = i % 32;
    t.warp = i / 32;
    b.warps[t.warp].exists |= 1u << t.lane;
    b.warps[t.warp].lanes[t.lane] = &t;
  }
  // Exactly the requested bytes: under ASan an index past the end is reported.
  b.dyn_smem_owner.reset(smem_bytes ? new unsigned char[smem_bytes] : nullptr);
  b.dyn_smem = b.dyn_smem_owner.get();
  b.dyn_smem_bytes = smem_bytes;
  b.smem_image.assign(own_image ? static_smem().bytes : 0, 0);
  b.resident = false;
}

/// Makes `b` the running block of slot `b`: its index, poisoned shared memory, fresh fibers.
inline void start_block(Worker& w, Block& b, Dim3 idx, bool own_image) {
  b.block_idx = idx;
  const unsigned n = static_cast<unsigned>(b.threads.size());
  b.live.store(static_cast<int>(n), std::memory_order_relaxed);
  b.arrived.store(0, std::memory_order_relaxed);
  for (Warp& wp : b.warps) wp.exited.store(0, std::memory_order_relaxed);
  for (Thread& t : b.threads) {
    t.state.store(ThreadState::ready, std::memory_order_relaxed);
    t.pending_mask.store(0, std::memory_order_relaxed);
    t.async_copies.clear();
    t.async_committed = 0;
    t.async_mmas.clear();
    t.mma_committed = 0;
    t.fiber->reset(&fiber_entry);
  }
  if (b.dyn_smem) std::memset(b.dyn_smem, 0xFF, b.dyn_smem_bytes);
  if (own_image) {
    std::fill(b.smem_image.begin(), b.smem_image.end(), static_cast<unsigned char>(0xFF));
    if (w.smem_owner == &b) w.smem_owner = nullptr;  // the TLS holds its predecessor's image
  } else {
    poison_static_smem();
  }
  b.resident = true;
  hb_release(&w.hb_start);
}

/// With several resident blocks: puts `b`'s static shared image into the TLS variables.
inline void switch_static_smem(Worker& w, Block& b) {
  if (w.smem_owner == &b || b.smem_image.empty()) return;
  if (w.smem_owner) save_static_smem(w.smem_owner->smem_image.data());
  load_static_smem(b.smem_image.data());
  hb_release(&w.hb_swap);  // see Worker::hb_swap
  w.smem_owner = &b;
}

/// Resumes each ready thread of `b` once, in the schedule's order.
inline void run_turn(Worker& w, Block& b, std::vector<unsigned>& ready, std::mt19937_64& rng, Schedule schedule) {
  const unsigned n = static_cast<unsigned>(b.threads.size());
  ready.clear();
  for (unsigned i = 0; i < n; ++i)
    if (b.threads[i].state.load(std::memory_order_relaxed) == ThreadState::ready) ready.push_back(i);
  if (ready.empty()) {  // every live thread waits at a barrier or warp op: only the block itself could release them
    record_error(b, describe_deadlock(b));
    return;
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
  w.current.store(nullptr, std::memory_order_relaxed);
}

inline std::string describe_livelock(const std::vector<Block*>& resident, std::uint64_t not_started, unsigned slots) {
  // Built by appending: g++ 12 warns falsely (-Wrestrict) on long chains of string + literal.
  std::string s = "livelock (a deadlock of spinning threads): for ";
  s += std::to_string(kLivelockRounds);
  s += " rounds no simulated thread made progress (threads only polled atomics or slept, and nothing changed); resident blocks:";
  for (const Block* b : resident) {
    s += ' ';
    s += block_name(b->block_idx);
  }
  if (not_started > 0) {
    s += "; ";
    s += std::to_string(not_started);
    s += " block(s) of the grid are not resident yet (";
    s += std::to_string(slots);
    s += " resident at a time, DEEPSHOCK_SIM_RESIDENT_BLOCKS): a block that waits for a block that cannot become resident never proceeds";
  }
  return s;
}

/// Runs every block of the grid (`order`: the block ids in the order they take slots).
inline Status run_grid(Worker& w, Dim3 grid, std::uint64_t nblocks, unsigned nslots, bool own_images, std::mt19937_64& rng,
                       Schedule schedule, const std::vector<std::uint64_t>& order) {
  auto block_at = [&](std::uint64_t i) {
    const std::uint64_t id = schedule == Schedule::random ? order[i] : schedule == Schedule::reversed ? nblocks - 1 - i : i;
    return Dim3{unsigned(id % grid.x), unsigned((id / grid.x) % grid.y), unsigned(id / (std::uint64_t(grid.x) * grid.y))};
  };
  const std::uint64_t nthreads = w.slots[0]->threads.size();
  std::uint64_t next = 0, quiet_rounds = 0;
  std::vector<unsigned> ready;
  std::vector<Block*> resident;
  while (true) {
    resident.clear();
    for (unsigned s = 0; s < nslots; ++s) {
      Block& b = *w.slots[s];
      if (!b.resident && next < nblocks) start_block(w, b, block_at(next++), own_images);
      if (b.resident) resident.push_back(&b);
    }
    if (resident.empty()) return Status::success();
    if (schedule == Schedule::reversed) std::reverse(resident.begin(), resident.end());
    if (schedule == Schedule::random && resident.size() > 1) std::shuffle(resident.begin(), resident.end(), rng);
    const std::uint64_t progress = w.progress.load(std::memory_order_relaxed);
    for (Block* bp : resident) {
      Block& b = *bp;
      if (own_images) switch_static_smem(w, b);
      // A block's turn: up to `budget` rounds of its ready threads, ended early by a round in
      // which it only polled or slept (it waits for another block). One round with a single
      // slot. Several rounds per turn keep the switches between blocks' static shared images
      // few; a random schedule draws the budget, so that blocks interleave at varying points.
      unsigned budget = nslots == 1 ? 1u : schedule == Schedule::random ? 1u + static_cast<unsigned>(rng() % kMaxTurnRounds) : kTurnRounds;
      while (true) {
        const std::uint64_t before = w.progress.load(std::memory_order_relaxed);
        run_turn(w, b, ready, rng, schedule);
        if (b.failed.load(std::memory_order_relaxed) || b.live.load(std::memory_order_relaxed) == 0 || --budget == 0 ||
            w.progress.load(std::memory_order_relaxed) == before)
          break;
      }
      if (b.failed.load(std::memory_order_relaxed))
        return Status::runtime_error("simulator: block " + block_name(b.block_idx) + ": " + b.error);
      if (b.live.load(std::memory_order_relaxed) > 0) continue;
      b.resident = false;  // retired: its slot takes the next block
      if (w.smem_owner == &b) w.smem_owner = nullptr;
      note_progress();
      bump(counters().blocks);
      bump(counters().threads, nthreads);
      if (std::string what = check_static_smem_redzones(); !what.empty())
        return Status::runtime_error("simulator: block " + block_name(b.block_idx) + (nslots > 1 ? " (or a block resident with it)" : "") +
                                     ": " + what);
    }
    if (w.progress.load(std::memory_order_relaxed) != progress) quiet_rounds = 0;
    else if (++quiet_rounds >= kLivelockRounds)
      return Status::runtime_error("simulator: " + describe_livelock(resident, nblocks - next, nslots));
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
  const std::uint64_t nblocks = std::uint64_t(grid.x) * grid.y * grid.z;
  const unsigned nslots = static_cast<unsigned>(std::min<std::uint64_t>(options().resident_blocks, nblocks));
  // Several resident blocks need each block's own static shared variables: found in the symbol table.
  const detail::StaticSmem& smem = detail::static_smem();
  const bool own_images = nslots > 1 && smem.bytes > 0;
  if (nslots > 1 && !smem.found)
    return Status::unsupported(
        "simulator: several resident blocks need the static __shared__ variables, which are found in the symbol table: " + smem.error);
  struct Guard {
    Worker& w;
    ~Guard() {
      w.in_launch = false;
      w.smem_owner = nullptr;
    }
  } guard{w};
  w.in_launch = true;
  try {
    w.stack_bytes = options().stack_bytes;
    while (w.slots.size() < nslots) w.slots.push_back(std::make_unique<detail::Block>());
    for (unsigned s = 0; s < nslots; ++s) {
      detail::Block& b = *w.slots[s];
      detail::prepare_slot(w, b, block, smem_bytes, own_images);
      b.grid_dim = grid;
      b.body = body;
      b.body_ctx = ctx;
      b.failed.store(false, std::memory_order_relaxed);
      b.error.clear();
    }
  } catch (const std::bad_alloc&) {
    return Status::resource_exhausted("block", "simulator could not allocate fiber stacks or shared memory");
  }
  detail::arm_static_smem_redzones();
  const Schedule schedule = options().schedule;
  std::mt19937_64 rng(options().seed ^ (0x9E3779B97F4A7C15ULL * ++detail::launches_since_options()));
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
  detail::bump(detail::counters().launches);
  DEEPSHOCK_RETURN_IF_ERROR(detail::run_grid(w, grid, nblocks, nslots, own_images, rng, schedule, order));
  return detail::check_device_allocations();
}

}  // namespace deepshock::sim
