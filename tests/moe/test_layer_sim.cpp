// The tests of layer_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "layer_tests.inc"
