// The tests of dispatch_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "dispatch_tests.inc"
