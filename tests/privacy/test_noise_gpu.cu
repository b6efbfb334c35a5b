// The tests of noise_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "noise_tests.inc"
