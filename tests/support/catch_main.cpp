// The one translation unit that compiles Catch2's implementation (v2 single header) for every
// test binary. Binaries whose tests need a GPU link gpu_probe.cpp, which defines
// deepshock_test_device_count(); when it reports no device the binary exits with code 77,
// which CTest (SKIP_RETURN_CODE 77) shows as skipped rather than passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

extern "C" __attribute__((weak)) int deepshock_test_device_count();

int main(int argc, char** argv) {
  if (&deepshock_test_device_count != nullptr) {
    const int n = deepshock_test_device_count();
    if (n <= 0) {
      std::printf("SKIPPED: no CUDA device on this machine; these tests need a GPU.\n");
      return 77;
    }
  }
  return Catch::Session().run(argc, argv);
}
