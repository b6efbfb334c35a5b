// The tests of dispatch_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "dispatch_tests.inc"
