// The tests of ep_device_tests.inc, run on the gpu backend: threads play the ranks on one GPU
// (the in-process transport copies device to device).
#include "backend_gpu.hpp"
#include "ep_device_tests.inc"
