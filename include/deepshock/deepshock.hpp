// deepshock/deepshock.hpp — everything public, in one include.
//
// Compile with nvcc for GPU kernels, with the host compiler and DEEPSHOCK_SIM=1 (link
// deepshock::sim) to run the same kernels on the CPU simulator, or with the host compiler alone
// for the host-side types, policies and references.
#pragma once

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/philox.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/core/tensor.hpp"
#include "deepshock/fair/metrics.hpp"
#include "deepshock/fair/postprocess.hpp"
#include "deepshock/gate/capacity.hpp"
#include "deepshock/gate/dispatch.hpp"
#include "deepshock/gate/expert_choice.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/reference.hpp"
#include "deepshock/gate/router.hpp"
#include "deepshock/gate/stats.hpp"
#include "deepshock/gate/types.hpp"
#include "deepshock/moe/dispatch.hpp"
#include "deepshock/platform/block.hpp"
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/mma.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/platform/warp.hpp"
#include "deepshock/policy/pipeline.hpp"
#include "deepshock/policy/safety.hpp"
#include "deepshock/policy/select.hpp"
#include "deepshock/privacy/accountant.hpp"
#include "deepshock/privacy/add_noise.hpp"
#include "deepshock/privacy/calibration.hpp"
#include "deepshock/privacy/dp_sgd.hpp"
#include "deepshock/privacy/noise.hpp"
