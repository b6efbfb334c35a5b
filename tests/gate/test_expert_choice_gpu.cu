// The tests of expert_choice_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "expert_choice_tests.inc"
