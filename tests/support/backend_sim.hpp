// Backend glue for the shared kernel tests (*.inc) compiled in the simulator: tag "[sim]" and
// `ds_backend::for_each_schedule`, which runs a test body in order, reversed and under two
// seeded random schedules (a fixed resume order hides races; README, "Three ways the same code
// runs"); TSan builds run one of them, the first random schedule.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>

#include "deepshock/sim/engine.hpp"

#define DS_BACKEND_TAG "[sim]"

namespace ds_backend {
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
template <class F>
void for_each_schedule(F&& f) {
  using deepshock::sim::Schedule;
  const struct {
    Schedule s;
    std::uint64_t seed;
  } plans[] = {{Schedule::in_order, 0}, {Schedule::random, 11}, {Schedule::reversed, 0}, {Schedule::random, 12345}};
  for (const auto& p : plans) {
    // Under TSan one schedule: its happens-before analysis flags an unsynchronised pair of
    // accesses whichever order they ran in, so more interleavings find no more races there (they
    // do for the value checks, which the plain and ASan builds run under all four), and TSan
    // multiplies the simulator's time by about 20. A random one, so that no fixed order is assumed.
    if (kThreadSanitizer && &p != &plans[1]) continue;
    deepshock::sim::ScopedOptions scope(p.s, p.seed);
    INFO("schedule " << deepshock::sim::to_string(p.s) << " seed " << p.seed);
    f();
  }
}
}  // namespace ds_backend
