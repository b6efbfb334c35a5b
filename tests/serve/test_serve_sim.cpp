// The tests of serve_layer_tests.inc, run on the sim backend (the layer run directly: no graphs).
#include "backend_sim.hpp"
#include "serve_layer_tests.inc"
