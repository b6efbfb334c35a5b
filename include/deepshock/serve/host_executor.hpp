// deepshock/serve/host_executor.hpp — the host executors of the MoE layer as the batcher's
// executor (serve/batcher.hpp): the exact one (moe::host::run_layer: fixed summation order,
// batch invariant) and, with oneDNN, the fast one (moe::cpu::Executor, cpu/layer.hpp). Padding
// rows go through LayerInputs::token_mask (routed nowhere), adapter ids through
// LayerInputs::adapter_ids for LoRA experts.
#pragma once

#include "deepshock/core/status.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "deepshock/serve/batcher.hpp"

namespace deepshock::serve {

/// Runs a step on `Run`: a callable (const LayerInputs<T>&, const LayerOutputs<T>&) -> Status.
template <class T, class ExpertT, class Run>
Status run_step_on_host(const Step<T>& s, Run&& run) {
  moe::LayerInputs<T> in{s.x, s.rows, 0, s.token_mask};
  if constexpr (ExpertT::adapter::kRank > 0) in.adapter_ids = s.adapter_ids;
  moe::LayerOutputs<T> out;
  out.y = s.y;
  return run(in, out);
}

/// moe::host::run_layer<Gate> on host weights (kept by reference).
template <class Gate, class ExpertT, class T>
class HostLayerExecutor {
 public:
  using value_type = T;
  HostLayerExecutor(moe::LayerDims dims, const moe::LayerWeights<T, ExpertT>& w, gate::PolicyParams params = gate::default_params<Gate>(),
                    gate::RouterOptions options = {})
      : dims_(dims), w_(w), params_(params), options_(options) {}
  int hidden() const { return dims_.hidden; }
  Status run(const Step<T>& s) const {
    if (s.rows > dims_.max_tokens) return Status::out_of_range("step.rows", "exceeds the layer's max_tokens");
    return run_step_on_host<T, ExpertT>(s, [&](const moe::LayerInputs<T>& in, const moe::LayerOutputs<T>& out) {
      return moe::host::run_layer<Gate>(dims_, params_, options_, w_, in, out);
    });
  }

 private:
  moe::LayerDims dims_;
  const moe::LayerWeights<T, ExpertT>& w_;
  gate::PolicyParams params_;
  gate::RouterOptions options_;
};

}  // namespace deepshock::serve
