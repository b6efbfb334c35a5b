// Backend glue for the shared kernel tests (*.inc) compiled by nvcc: tag "[gpu]"; the GPU has
// one schedule, so `for_each_schedule` runs the body once. Binaries exit 77 (skipped) without a
// device (support/catch_main.cpp).
#pragma once

#include <utility>

#define DS_BACKEND_TAG "[gpu]"

namespace ds_backend {
/// The GPU suites never run under ThreadSanitizer (see backend_sim.hpp).
inline constexpr bool kThreadSanitizer = false;
template <class F>
void for_each_schedule(F&& f) {
  std::forward<F>(f)();
}
}  // namespace ds_backend
