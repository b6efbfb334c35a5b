// The tests of policy_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "policy_tests.inc"
