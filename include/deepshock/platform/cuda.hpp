// deepshock/platform/cuda.hpp — the one place that decides where CUDA's names come from.
//
//   nvcc                -> <cuda_runtime.h>
//   simulator (g++)     -> deepshock/sim/cuda_shim.hpp (same names, CPU implementation)
//   plain host compiler -> <cuda_runtime.h> for the runtime facade only (no kernels)
#pragma once

#include "deepshock/core/config.hpp"

#if DEEPSHOCK_SIM
#include "deepshock/sim/cuda_shim.hpp"
#else
#include <cuda_runtime.h>
#endif
