// The shared kernel tests, compiled by nvcc and run on a GPU. Without a device the binary exits
// with code 77 before any test runs (support/catch_main.cpp) and CTest reports it skipped.
#include <utility>

namespace ds_backend {
template <class F>
void for_each_schedule(F&& f) {
  std::forward<F>(f)();
}
}  // namespace ds_backend

#define DS_BACKEND_TAG "[gpu]"
#include "kernel_tests.inc"
