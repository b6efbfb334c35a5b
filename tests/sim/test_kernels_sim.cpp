// The tests of kernel_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "kernel_tests.inc"
