// deepshock/sim/fiber.hpp — stackful fibers for the SIMT simulator.
//
// One fiber per simulated GPU thread. Context switches use Boost.Context's fcontext primitives
// (a few ns each). Switches are annotated for AddressSanitizer (fake stacks, stack bounds) and
// ThreadSanitizer (one TSan fiber per stack slot, switched with `no_sync`, so that the only
// happens-before edges between simulated threads are the ones the simulator's barriers create).
#pragma once

#include <sys/mman.h>
#include <unistd.h>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

#include <boost/context/detail/fcontext.hpp>

#if defined(__SANITIZE_ADDRESS__)
#define DEEPSHOCK_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DEEPSHOCK_SIM_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define DEEPSHOCK_SIM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DEEPSHOCK_SIM_TSAN 1
#endif
#endif
#ifndef DEEPSHOCK_SIM_ASAN
#define DEEPSHOCK_SIM_ASAN 0
#endif
#ifndef DEEPSHOCK_SIM_TSAN
#define DEEPSHOCK_SIM_TSAN 0
#endif

#if DEEPSHOCK_SIM_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if DEEPSHOCK_SIM_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace deepshock::sim::detail {

namespace bctx = boost::context::detail;

/// Happens-before annotations; no-ops unless built with ThreadSanitizer.
inline void hb_release(void* addr) noexcept {
#if DEEPSHOCK_SIM_TSAN
  __tsan_release(addr);
#else
  (void)addr;
#endif
}
inline void hb_acquire(void* addr) noexcept {
#if DEEPSHOCK_SIM_TSAN
  __tsan_acquire(addr);
#else
  (void)addr;
#endif
}

/// A fiber stack: an mmap'd region with a PROT_NONE guard page at its low end, so an
/// overflowing simulated thread faults instead of corrupting its neighbour.
class Stack {
 public:
  Stack() = default;
  explicit Stack(std::size_t usable_bytes) {
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    usable_ = (usable_bytes + page - 1) / page * page;
    total_ = usable_ + page;
    void* p = ::mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    if (::mprotect(p, page, PROT_NONE) != 0) {
      ::munmap(p, total_);
      throw std::bad_alloc();
    }
    base_ = static_cast<char*>(p);
    bottom_ = base_ + page;
  }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  Stack(Stack&& o) noexcept { swap(o); }
  Stack& operator=(Stack&& o) noexcept {
    swap(o);
    return *this;
  }
  ~Stack() {
    if (base_) ::munmap(base_, total_);
  }
  void* bottom() const noexcept { return bottom_; }         ///< lowest usable address
  void* top() const noexcept { return bottom_ + usable_; }  ///< stacks grow down from here
  std::size_t size() const noexcept { return usable_; }

 private:
  void swap(Stack& o) noexcept {
    std::swap(base_, o.base_);
    std::swap(bottom_, o.bottom_);
    std::swap(total_, o.total_);
    std::swap(usable_, o.usable_);
  }
  char* base_ = nullptr;
  char* bottom_ = nullptr;
  std::size_t total_ = 0;
  std::size_t usable_ = 0;
};

/// Execution context of one fiber plus the sanitizer state its switches need.
struct FiberContext {
  Stack stack;
  bctx::fcontext_t ctx = nullptr;
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;

  explicit FiberContext(std::size_t stack_bytes) : stack(stack_bytes) {
#if DEEPSHOCK_SIM_TSAN
    tsan_fiber = __tsan_create_fiber(0);
#endif
  }
  FiberContext(const FiberContext&) = delete;
  FiberContext& operator=(const FiberContext&) = delete;
  ~FiberContext() {
#if DEEPSHOCK_SIM_TSAN
    if (tsan_fiber) __tsan_destroy_fiber(tsan_fiber);
#endif
  }
  /// Prepares the fiber to start at `entry` on its next resume.
  void reset(void (*entry)(bctx::transfer_t)) {
#if DEEPSHOCK_SIM_ASAN
    // A fiber abandoned after a simulator error may leave poisoned frames behind.
    __asan_unpoison_memory_region(stack.bottom(), stack.size());
#endif
    ctx = bctx::make_fcontext(stack.top(), stack.size(), entry);
  }
};

/// The scheduler side of the switches: the OS thread's own stack.
// `ctx` is rewritten by whichever fiber last switched away from the scheduler; it is atomic
// (relaxed) so that ThreadSanitizer does not report the simulator's own plumbing as a race.
struct SchedulerContext {
  std::atomic<bctx::fcontext_t> ctx{nullptr};
  void* asan_fake_stack = nullptr;
  const void* asan_bottom = nullptr;
  std::size_t asan_size = 0;
  void* tsan_fiber = nullptr;  ///< the OS thread's own TSan context, set once by init()

  void init() {
#if DEEPSHOCK_SIM_TSAN
    tsan_fiber = __tsan_get_current_fiber();
#endif
  }
};

/// Scheduler -> fiber. Returns when the fiber yields or finishes.
inline void switch_to_fiber(SchedulerContext& s, FiberContext& f, void* data) {
  // Read before telling TSan about the switch: afterwards TSan attributes accesses to the fiber.
  const bctx::fcontext_t target = f.ctx;
#if DEEPSHOCK_SIM_ASAN
  __sanitizer_start_switch_fiber(&s.asan_fake_stack, f.stack.bottom(), f.stack.size());
#endif
#if DEEPSHOCK_SIM_TSAN
  __tsan_switch_to_fiber(f.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  bctx::transfer_t t = bctx::jump_fcontext(target, data);
  f.ctx = t.fctx;
#if DEEPSHOCK_SIM_ASAN
  __sanitizer_finish_switch_fiber(s.asan_fake_stack, nullptr, nullptr);
#endif
}

/// First thing a fiber does when it starts: record where the scheduler is.
inline void fiber_started(SchedulerContext& s, bctx::transfer_t t) {
  s.ctx.store(t.fctx, std::memory_order_relaxed);
#if DEEPSHOCK_SIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &s.asan_bottom, &s.asan_size);
#endif
}

/// Fiber -> scheduler; returns when the scheduler resumes this fiber.
inline void switch_to_scheduler(SchedulerContext& s, FiberContext& f) {
#if DEEPSHOCK_SIM_ASAN
  __sanitizer_start_switch_fiber(&f.asan_fake_stack, s.asan_bottom, s.asan_size);
#endif
#if DEEPSHOCK_SIM_TSAN
  __tsan_switch_to_fiber(s.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  bctx::transfer_t t = bctx::jump_fcontext(s.ctx.load(std::memory_order_relaxed), nullptr);
  s.ctx.store(t.fctx, std::memory_order_relaxed);
#if DEEPSHOCK_SIM_ASAN
  __sanitizer_finish_switch_fiber(f.asan_fake_stack, &s.asan_bottom, &s.asan_size);
#endif
}

/// Fiber -> scheduler for the last time; never returns.
[[noreturn]] inline void finish_fiber(SchedulerContext& s) {
#if DEEPSHOCK_SIM_ASAN
  __sanitizer_start_switch_fiber(nullptr, s.asan_bottom, s.asan_size);
#endif
#if DEEPSHOCK_SIM_TSAN
  __tsan_switch_to_fiber(s.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  bctx::jump_fcontext(s.ctx.load(std::memory_order_relaxed), nullptr);
  std::abort();  // unreachable: a finished fiber is never resumed
}

}  // namespace deepshock::sim::detail
