// The tests of ep_device_tests.inc, run on the sim backend: threads play the ranks, each with
// its own simulated device buffers.
#include "backend_sim.hpp"
#include "ep_device_tests.inc"
