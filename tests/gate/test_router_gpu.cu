// The tests of router_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "router_tests.inc"
