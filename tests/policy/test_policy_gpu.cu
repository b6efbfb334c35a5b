// The tests of policy_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "policy_tests.inc"
