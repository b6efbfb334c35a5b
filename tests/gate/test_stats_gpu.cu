// The tests of stats_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "stats_tests.inc"
