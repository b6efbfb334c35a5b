// The tests of router_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "router_tests.inc"
