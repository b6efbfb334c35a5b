// deepshock/sim/options.hpp — the SIMT simulator's settings, counters and error type.
//
// Settings come from the environment on first use and can be replaced for a scope
// (`sim::ScopedOptions`, which tests use to run a kernel under every schedule):
//   DEEPSHOCK_SIM_SCHEDULE=in_order|reversed|random[:seed]   the resume order (see engine.hpp)
//   DEEPSHOCK_SIM_RESIDENT_BLOCKS=N                           blocks resident at once (1..64)
//   DEEPSHOCK_SIM_STACK_KB=N                                  stack of each simulated thread
// A value the simulator does not understand makes every launch fail with it, so that a typo
// cannot silently drop coverage.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace deepshock::sim {

/// Grid and block extents, as CUDA's dim3.
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/// Order in which ready simulated threads, and the blocks of a grid, are resumed.
enum class Schedule : std::uint8_t { in_order, reversed, random };

/// Most blocks the simulator keeps resident at once (DEEPSHOCK_SIM_RESIDENT_BLOCKS).
inline constexpr unsigned kMaxResidentBlocks = 64;

/// Process-wide simulator settings.
struct Options {
  Schedule schedule = Schedule::in_order;
  std::uint64_t seed = 0x5eedULL;  ///< seeds the random schedule
  /// Blocks resident at once. 1: blocks run one after another. N > 1: up to N blocks run
  /// interleaved (their threads take turns under the schedule), so protocols between blocks —
  /// tickets, grid-wide counters, a block spinning on another block's flag — are exercised as
  /// on a GPU, where a wave of blocks runs concurrently.
  unsigned resident_blocks = 1;
  std::size_t stack_bytes = 128 * 1024;       ///< per simulated thread
  std::size_t max_dynamic_smem = 227 * 1024;  ///< as sm_90 (opt-in maximum)
  /// Set when the environment asked for something unknown; every launch then fails with it.
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
  if (v == "in_order") {
    schedule = Schedule::in_order;
    return true;
  }
  if (v == "reversed") {
    schedule = Schedule::reversed;
    return true;
  }
  if (v == "random") {
    schedule = Schedule::random;
    return true;
  }
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

/// A decimal number in [lo, hi], or false.
inline bool parse_unsigned(const char* s, unsigned long lo, unsigned long hi, unsigned long& out) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) return false;
  out = v;
  return true;
}

inline Options options_from_env() {
  Options o;
  if (const char* s = std::getenv("DEEPSHOCK_SIM_SCHEDULE"))
    if (!parse_schedule(s, o.schedule, o.seed))
      o.config_error = std::string("DEEPSHOCK_SIM_SCHEDULE: '") + s + "' is not in_order, reversed, random or random:<seed>";
  if (const char* s = std::getenv("DEEPSHOCK_SIM_STACK_KB")) {
    unsigned long kb = 0;
    if (!parse_unsigned(s, 16, 1ul << 20, kb)) o.config_error = std::string("DEEPSHOCK_SIM_STACK_KB: '") + s + "' is not a number >= 16";
    else o.stack_bytes = kb * 1024;
  }
  if (const char* s = std::getenv("DEEPSHOCK_SIM_RESIDENT_BLOCKS")) {
    unsigned long n = 0;
    if (!parse_unsigned(s, 1, kMaxResidentBlocks, n))
      o.config_error =
          std::string("DEEPSHOCK_SIM_RESIDENT_BLOCKS: '") + s + "' is not a number in [1, " + std::to_string(kMaxResidentBlocks) + "]";
    else o.resident_blocks = static_cast<unsigned>(n);
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
  /// Changes the schedule only; the other settings (resident blocks, stack) stay as they are.
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

}  // namespace deepshock::sim
