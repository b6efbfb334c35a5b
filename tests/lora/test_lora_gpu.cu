// The tests of lora_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "lora_tests.inc"
