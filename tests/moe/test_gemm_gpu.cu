// The tests of gemm_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "gemm_tests.inc"
