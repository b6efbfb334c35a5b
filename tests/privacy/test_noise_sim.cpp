// The tests of noise_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "noise_tests.inc"
