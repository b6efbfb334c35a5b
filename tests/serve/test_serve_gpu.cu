// The tests of serve_layer_tests.inc, run on the gpu backend: the buckets as CUDA graphs.
#include "backend_gpu.hpp"
#include "serve_layer_tests.inc"
