// Backend glue for the shared kernel tests (*.inc) compiled in the simulator: tag "[sim]" and
// `ds_backend::for_each_schedule`, which runs a test body in order, reversed and under two
// seeded random schedules (a fixed resume order hides races; README, "Three ways the same code runs").
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>

#include "deepshock/sim/engine.hpp"

#define DS_BACKEND_TAG "[sim]"

namespace ds_backend {
template <class F>
void for_each_schedule(F&& f) {
  using deepshock::sim::Schedule;
  const struct {
    Schedule s;
    std::uint64_t seed;
  } plans[] = {{Schedule::in_order, 0}, {Schedule::reversed, 0}, {Schedule::random, 11}, {Schedule::random, 12345}};
  for (const auto& p : plans) {
    deepshock::sim::ScopedOptions scope(p.s, p.seed);
    INFO("schedule " << deepshock::sim::to_string(p.s) << " seed " << p.seed);
    f();
  }
}
}  // namespace ds_backend
