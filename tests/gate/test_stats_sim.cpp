// The tests of stats_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "stats_tests.inc"
