// The tests of kernel_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "kernel_tests.inc"
