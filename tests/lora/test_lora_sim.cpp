// The tests of lora_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "lora_tests.inc"
