// The tests of expert_choice_tests.inc, run on the sim backend.
#include "backend_sim.hpp"
#include "expert_choice_tests.inc"
