// The demo's LoRA run (--lora R --adapters N): the base layer and the same layer serving N
// adapters of mixed ranks (R, R/2, R/4, ...) at once, some tokens without one (ids
// cycle through -1, 0, ..., N - 1). Prints each run's time and the adapters' overhead, and checks
// the LoRA layer's y against the double reference with the adapters (the run's own routing).
// The adapters ride in one compile-time capacity (kLoraCapacity): their run-time ranks decide
// their cost.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>

#include "deepshock/moe/reference_layer.hpp"
#include "executors.hpp"
#include "lora_model.hpp"

namespace demo {

struct LoraRunArgs {
  int tokens = 0, reps = 0, check = 0, rank = 0, adapters = 0;
  std::uint64_t seed = 0;
};

/// Runs preset p (bf16 or `Codec` base weights) with and without the adapters on `exec`.
template <class Gate, class Codec>
int run_lora(const Preset& p, const LoraRunArgs& a, Exec exec) {
  namespace ds = deepshock;
  using Base = moe::Expert<Codec>;
  using WithLora = moe::Expert<Codec, ds::lora::LoRA<kLoraCapacity>>;
  constexpr int E = Gate::kExperts, K = Gate::kTopK;
  const int T = a.tokens, H = p.hidden, I = p.inter, Is = p.shared;
  std::printf("model   : %s\n", p.about);
  std::printf("lora    : %d adapter(s) of ranks", a.adapters);
  for (int i = 0; i < a.adapters; ++i) std::printf(" %d", LoraModel::rank_of(i, a.rank));
  std::printf(" (capacity %d: one instantiation, each adapter costs its own rank) on w1, w3, w2%s; base weights %s; tokens' ids cycle "
              "-1 (none), 0 .. %d\n",
              kLoraCapacity, Is > 0 ? " and the shared expert's" : "", Codec::kIdentity ? "bf16" : Codec::kName, a.adapters - 1);
  const Model m = make_model(p, T, a.seed);
  QuantModel qm;
  if constexpr (!Codec::kIdentity) {
    if (const ds::Status qs = quantize_model<Codec>(p, m, qm); !qs.ok()) {
      std::printf("error   : %s\n", qs.to_string().c_str());
      return 1;
    }
  }
  const LoraModel lm = make_lora(p, T, a.rank, a.adapters, a.seed);
  gate::PolicyParams params = gate::default_params<Gate>();
  params.renormalize = p.renormalize;
  gate::RouterOptions options;
  options.routed_scaling_factor = p.scale;
  const Biases biases = make_biases(p, a.seed);
  const moe::LayerDims dims{H, I, Is, T};
  RunResult base, lora;
  auto run = [&](auto expert_tag, RunResult& r, const LoraModel* l) {
    using X = decltype(expert_tag);
    return exec == Exec::host || exec == Exec::cpu_fast
               ? run_host<Gate, X>(dims, params, options, m, qm, biases, p.shared_gate, a.reps, r, l, exec == Exec::cpu_fast)
               : run_device<Gate, X>(dims, params, options, m, qm, biases, p.shared_gate, a.reps, r, l);
  };
  for (const ds::Status& st : {run(Base{}, base, nullptr), run(WithLora{}, lora, &lm)})
    if (!st.ok()) {
      std::printf("error   : %s\n", st.to_string().c_str());
      return 1;
    }
  if (!lora.plan.empty()) std::printf("kernels : %s\n", lora.plan.c_str());
  if (lora.timed > 0) {
    const char* how = exec == Exec::gpu                              ? "CUDA events"
                      : exec == Exec::host || exec == Exec::cpu_fast ? "std::chrono, CPU"
                                                                     : "simulator clock, not GPU time";
    std::printf("time    : base layer %.1f us, with the adapters %.1f us per layer (%s): LoRA overhead %+.1f %%\n", base.us, lora.us, how,
                100.0 * (lora.us / base.us - 1.0));
  }

  // Check: y of the first C tokens against the double reference with the adapters, from the
  // LoRA run's routing (the adapters do not change the routing: the router reads x only).
  bool ok = base.ids == lora.ids;
  if (!ok) std::printf("check   : the LoRA run routed differently from the base run\n");
  const int C = std::min(a.check, T);
  if (C > 0) {
    const ModelPtrs hps = host_pointers(m, qm);
    const BiasPtrs hb = bias_pointers(biases, E);
    auto w = layer_weights<WithLora>(hps, p.shared_gate, hb);
    std::vector<ds::lora::AdapterRef<bf16>> refs;
    for (const auto& ad : lm.adapters) refs.push_back(ad.ref());
    w.adapter = {refs.data(), static_cast<int>(refs.size())};
    moe::LayerInputs<bf16> in{hps.bf[kX], C, 0, nullptr};
    in.adapter_ids = lm.ids.data();
    const std::vector<double> ref = moe::reference::layer_from_routing(dims, E, K, w, in, lora.ids.data(), lora.weights.data());
    in.adapter_ids = nullptr;
    const std::vector<double> ref_base = moe::reference::layer_from_routing(dims, E, K, w, in, lora.ids.data(), lora.weights.data());
    double max_err = 0.0, sum_err = 0.0, sum_ref = 0.0, num = 0.0, den = 0.0;
    long bad = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      const double err = std::abs(double(lora.y[i].to_float()) - ref[i]);
      bad += !(err <= 2e-2 + 2e-2 * std::abs(ref[i]));  // NaN fails
      max_err = std::max(max_err, std::isnan(err) ? INFINITY : err);
      sum_err += err;
      sum_ref += std::abs(ref[i]);
      num += (ref[i] - ref_base[i]) * (ref[i] - ref_base[i]);
      den += ref_base[i] * ref_base[i];
    }
    const double mean_rel = sum_ref > 0 ? sum_err / sum_ref : sum_err;
    std::printf("lora    : the adapters move y by %.2e relative RMS over %d token(s) (double references)\n", std::sqrt(num / den), C);
    std::printf("check   : y of %d token(s) vs the double reference with the adapters: max |err| %.2e, mean rel %.2e, %ld element(s) "
                "out of tolerance (bf16: |err| <= 2e-2 + 2e-2 |ref| each, mean rel <= 5e-3)\n",
                C, max_err, mean_rel, bad);
    ok = ok && bad == 0 && mean_rel <= 5e-3;
  }
  std::printf("result  : %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace demo
