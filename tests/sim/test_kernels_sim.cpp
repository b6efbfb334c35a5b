// The shared kernel tests, run in the SIMT simulator under every schedule.
#include "deepshock/sim/engine.hpp"

#include <catch2/catch.hpp>

namespace ds_backend {
/// Runs `f` in order, reversed, and under two seeded random schedules.
template <class F>
void for_each_schedule(F&& f) {
  using deepshock::sim::Schedule;
  const struct { Schedule s; std::uint64_t seed; } plans[] = {
      {Schedule::in_order, 0}, {Schedule::reversed, 0}, {Schedule::random, 11}, {Schedule::random, 12345}};
  for (const auto& p : plans) {
    deepshock::sim::ScopedOptions scope(p.s, p.seed);
    INFO("schedule " << deepshock::sim::to_string(p.s) << " seed " << p.seed);
    f();
  }
}
}  // namespace ds_backend

#define DS_BACKEND_TAG "[sim]"
#include "kernel_tests.inc"
