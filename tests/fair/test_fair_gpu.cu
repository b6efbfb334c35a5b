// The tests of fair_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "fair_tests.inc"
