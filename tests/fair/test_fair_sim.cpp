// The tests of fair_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "fair_tests.inc"
