// The demo's executors: moe::Layer on the device (CUDA, or the simulator in demo_sim),
// moe::host::run_layer on the CPU, each with optional LoRA adapters (lora_model.hpp), and, in
// builds with oneDNN (DEEPSHOCK_DEMO_CPU_FAST), the fast CPU executor moe::cpu::Executor.
#pragma once

#ifndef DEEPSHOCK_DEMO_CPU_FAST  // CMake defines it to 1 where demo_sim links deepshock::cpu
#define DEEPSHOCK_DEMO_CPU_FAST 0
#endif

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "deepshock/moe/host_layer.hpp"
#include "deepshock/moe/layer.hpp"
#if DEEPSHOCK_DEMO_CPU_FAST
#include "deepshock/cpu/layer.hpp"
#endif
#include "lora_model.hpp"
#include "model.hpp"
#include "quant_model.hpp"

namespace demo {

namespace gate = deepshock::gate;
namespace rt = deepshock::rt;

enum class Exec { gpu, host, sim, cpu_fast };
inline const char* exec_name(Exec e) { return e == Exec::gpu ? "gpu" : e == Exec::host ? "host" : e == Exec::sim ? "sim" : "cpu-fast"; }
/// The executors that run on the CPU and route on the host.
inline bool on_host(Exec e) { return e == Exec::host || e == Exec::cpu_fast; }

struct RunResult {
  std::vector<bf16> y;
  std::vector<int> ids, counts;
  std::vector<float> weights;
  double us = 0.0;   // per layer
  int timed = 0;     // runs timed (0: not timed)
  std::string plan;  // the device layer's kernel_plan (empty for the host executor)
};

/// moe::Layer on the device (CUDA, or the simulator in demo_sim): upload, warm up (GPU), time
/// `reps` runs between two events on one stream, download the outputs of the last run.
template <class Gate, class ExpertT>
ds::Status run_device(const moe::LayerDims& dims, const gate::PolicyParams& params, const gate::RouterOptions& options, const Model& m,
                      const QuantModel& qm, const Biases& biases, moe::SharedGate sg, int reps, RunResult& r,
                      const LoraModel* lm = nullptr) {
  constexpr int E = Gate::kExperts, K = Gate::kTopK;
  const moe::Layer<Gate, ExpertT, bf16> layer(dims, params, options);
  DEEPSHOCK_RETURN_IF_ERROR(layer.status());
  rt::Stream stream;
  DEEPSHOCK_RETURN_IF_ERROR(stream.create());
  std::array<rt::DeviceBuffer<bf16>, kTensors> d;
  std::array<rt::DeviceBuffer<std::uint8_t>, kTensors> dq, dz;
  std::array<rt::DeviceBuffer<float>, kTensors> dscale, dglobal;
  std::array<rt::DeviceBuffer<std::uint8_t>, kTensors> dbscale;
  std::array<rt::DeviceBuffer<std::uint16_t>, kTensors> dgscale;
  ModelPtrs ptrs;
  auto upload = [&](auto& buf, const auto* src, std::size_t n, auto& dst) -> ds::Status {
    if (n == 0) return ds::Status::success();
    DEEPSHOCK_RETURN_IF_ERROR(buf.allocate(n));
    DEEPSHOCK_RETURN_IF_ERROR(buf.copy_from_host(src, n, stream.get()));
    dst = buf.data();
    return ds::Status::success();
  };
  for (int i = 0; i < kTensors; ++i) {
    const QuantTensor& qt = qm[i];
    if (qt.q.empty()) {  // a quantized tensor goes up in its codec's layout only
      DEEPSHOCK_RETURN_IF_ERROR(upload(d[i], m[i].data(), m[i].n, ptrs.bf[i]));
    } else {
      DEEPSHOCK_RETURN_IF_ERROR(upload(dq[i], qt.q.data(), qt.q.size(), ptrs.q[i]));
      DEEPSHOCK_RETURN_IF_ERROR(upload(dscale[i], qt.scale.data(), qt.scale.size(), ptrs.scale[i]));
      DEEPSHOCK_RETURN_IF_ERROR(upload(dgscale[i], qt.gscale.data(), qt.gscale.size(), ptrs.gscale[i]));
      DEEPSHOCK_RETURN_IF_ERROR(upload(dz[i], qt.zero.data(), qt.zero.size(), ptrs.zero[i]));
      DEEPSHOCK_RETURN_IF_ERROR(upload(dbscale[i], qt.bscale.data(), qt.bscale.size(), ptrs.bscale[i]));
      DEEPSHOCK_RETURN_IF_ERROR(upload(dglobal[i], qt.global.data(), qt.global.size(), ptrs.global[i]));
    }
  }
  std::array<rt::DeviceBuffer<float>, 5> dbias;
  BiasPtrs bp;
  bp.experts = E;
  {
    const std::vector<float>* host[5] = {&biases.b1, &biases.b3, &biases.b2, &biases.router, &biases.correction};
    const float** dst[5] = {&bp.b1, &bp.b3, &bp.b2, &bp.router, &bp.correction};
    for (int i = 0; i < 5; ++i) DEEPSHOCK_RETURN_IF_ERROR(upload(dbias[i], host[i]->data(), host[i]->size(), *dst[i]));
  }
  const std::array<const bf16*, kTensors>& ptr = ptrs.bf;
  const std::size_t T = dims.max_tokens, H = dims.hidden;
  rt::DeviceBuffer<bf16> y;
  rt::DeviceBuffer<int> ids, counts;
  rt::DeviceBuffer<float> wts;
  rt::DeviceBuffer<unsigned char> ws;
  const std::size_t ws_bytes = layer.workspace_bytes();
  DEEPSHOCK_RETURN_IF_ERROR(y.allocate(T * H));
  DEEPSHOCK_RETURN_IF_ERROR(ids.allocate(T * K));
  DEEPSHOCK_RETURN_IF_ERROR(wts.allocate(T * K));
  DEEPSHOCK_RETURN_IF_ERROR(counts.allocate(E));
  DEEPSHOCK_RETURN_IF_ERROR(ws.allocate(ws_bytes));
  DEEPSHOCK_RETURN_IF_ERROR(y.fill_bytes(0xFF, stream.get()));  // poison: NaN unless written
  auto w = layer_weights<ExpertT>(ptrs, sg, bp);
  moe::LayerInputs<bf16> in{ptr[kX], dims.max_tokens, 0, nullptr};
  // LoRA: each adapter's A and B, the table of their device pointers, the tokens' ids.
  std::vector<rt::DeviceBuffer<bf16>> lora_bufs;
  rt::DeviceBuffer<ds::lora::AdapterRef<bf16>> lora_table;
  rt::DeviceBuffer<int> lora_ids;
  if constexpr (ExpertT::adapter::kRank > 0) {
    if (lm != nullptr) {
      std::vector<ds::lora::AdapterRef<bf16>> refs;
      lora_bufs.reserve(lm->adapters.size() * 2 * ds::lora::kMatrices);
      for (const auto& a : lm->adapters) {
        ds::lora::AdapterRef<bf16> ref;
        ref.rank = a.rank;
        ref.scaling = a.scaling;
        for (int i = 0; i < ds::lora::kMatrices; ++i) {
          if (!a.adapts(i)) continue;
          const bf16* dst = nullptr;
          lora_bufs.emplace_back();
          DEEPSHOCK_RETURN_IF_ERROR(upload(lora_bufs.back(), a.a_of(i).data(), a.a_of(i).size(), dst));
          ref.a[i] = dst;
          lora_bufs.emplace_back();
          DEEPSHOCK_RETURN_IF_ERROR(upload(lora_bufs.back(), a.b[i].data(), a.b[i].size(), dst));
          ref.b[i] = dst;
        }
        refs.push_back(ref);
      }
      const ds::lora::AdapterRef<bf16>* table = nullptr;
      DEEPSHOCK_RETURN_IF_ERROR(upload(lora_table, refs.data(), refs.size(), table));
      w.adapter = {table, static_cast<int>(refs.size())};
      const int* idp = nullptr;
      DEEPSHOCK_RETURN_IF_ERROR(upload(lora_ids, lm->ids.data(), lm->ids.size(), idp));
      in.adapter_ids = idp;
    }
  }
  const moe::LayerOutputs<bf16> out{.y = y.data(), .topk_ids = ids.data(), .topk_weights = wts.data(), .expert_counts = counts.data()};
  r.plan = layer.kernel_plan(in, w);
  const int warm = (!DEEPSHOCK_SIM || reps == 0) ? 1 : 0;  // a simulator warm-up would only cost time
  for (int i = 0; i < warm; ++i) DEEPSHOCK_RETURN_IF_ERROR(layer.run(in, w, out, ws.data(), ws_bytes, stream.get()));
  rt::Event start, stop;
  DEEPSHOCK_RETURN_IF_ERROR(start.create());
  DEEPSHOCK_RETURN_IF_ERROR(stop.create());
  DEEPSHOCK_RETURN_IF_ERROR(start.record(stream.get()));
  for (int i = 0; i < reps; ++i) DEEPSHOCK_RETURN_IF_ERROR(layer.run(in, w, out, ws.data(), ws_bytes, stream.get()));
  DEEPSHOCK_RETURN_IF_ERROR(stop.record(stream.get()));
  DEEPSHOCK_RETURN_IF_ERROR(stop.synchronize());
  float ms = 0.0f;
  DEEPSHOCK_RETURN_IF_ERROR(rt::Event::elapsed_ms(start, stop, ms));
  r.timed = reps;
  r.us = reps > 0 ? 1e3 * ms / reps : 0.0;
  r.y.resize(T * H);
  r.ids.resize(T * K);
  r.weights.resize(T * K);
  r.counts.resize(E);
  DEEPSHOCK_RETURN_IF_ERROR(y.copy_to_host(r.y.data(), r.y.size(), stream.get()));
  DEEPSHOCK_RETURN_IF_ERROR(ids.copy_to_host(r.ids.data(), r.ids.size(), stream.get()));
  DEEPSHOCK_RETURN_IF_ERROR(wts.copy_to_host(r.weights.data(), r.weights.size(), stream.get()));
  DEEPSHOCK_RETURN_IF_ERROR(counts.copy_to_host(r.counts.data(), r.counts.size(), stream.get()));
  return stream.synchronize();
}

/// moe::host::run_layer (host routing in double, experts in fp32), or with `fast` the fast CPU
/// executor (the same routing, experts on oneDNN / the GEMV): max(reps, 1) runs, timed after a
/// warm-up run.
/// The Biases' host pointers.
inline BiasPtrs bias_pointers(const Biases& b, int experts) {
  auto p = [](const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); };
  return {p(b.b1), p(b.b3), p(b.b2), p(b.router), p(b.correction), experts};
}

template <class Gate, class ExpertT>
ds::Status run_host(const moe::LayerDims& dims, const gate::PolicyParams& params, const gate::RouterOptions& options, const Model& m,
                    const QuantModel& qm, const Biases& biases, moe::SharedGate sg, int reps, RunResult& r, const LoraModel* lm = nullptr,
                    bool fast = false) {
  constexpr int E = Gate::kExperts, K = Gate::kTopK;
  const ModelPtrs ptrs = host_pointers(m, qm);
  const std::array<const bf16*, kTensors>& ptr = ptrs.bf;
  const std::size_t T = dims.max_tokens, H = dims.hidden;
  r.y.assign(T * H, bf16::from_bits(0x7FC0));  // poison: NaN unless written
  r.ids.assign(T * K, -1);
  r.weights.assign(T * K, NAN);
  r.counts.assign(E, -1);
  auto w = layer_weights<ExpertT>(ptrs, sg, bias_pointers(biases, E));
  moe::LayerInputs<bf16> in{ptr[kX], dims.max_tokens, 0, nullptr};
  std::vector<ds::lora::AdapterRef<bf16>> refs;
  if constexpr (ExpertT::adapter::kRank > 0) {
    if (lm != nullptr) {
      for (const auto& a : lm->adapters) refs.push_back(a.ref());
      w.adapter = {refs.data(), static_cast<int>(refs.size())};
      in.adapter_ids = lm->ids.data();
    }
  }
  const moe::LayerOutputs<bf16> out{.y = r.y.data(),
                                    .topk_ids = r.ids.data(),
                                    .topk_weights = r.weights.data(),
                                    .expert_counts = r.counts.data()};
  const int runs = std::max(reps, 1);
  // exec: host::run_layer, or (fast) one cpu::Executor for every run, as a server would keep it.
  auto run_once = [&]() -> std::function<ds::Status()> {
#if DEEPSHOCK_DEMO_CPU_FAST
    if (fast) {
      auto ex = std::make_shared<moe::cpu::Executor<bf16, ExpertT>>(dims, E, K);
      return [=, &w, &in, &out] {
        DEEPSHOCK_RETURN_IF_ERROR(ex->status());
        return ex->template run<Gate>(params, options, w, in, out);
      };
    }
#endif
    return [&] {
      return fast ? ds::Status::unsupported("--executor cpu-fast: this demo was built without oneDNN")
                  : moe::host::run_layer<Gate>(dims, params, options, w, in, out);
    };
  }();
  // One untimed run first when timing (thread pool start-up, first touch of the scratch, oneDNN
  // primitives for this batch's shapes).
  if (reps > 0) DEEPSHOCK_RETURN_IF_ERROR(run_once());
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) DEEPSHOCK_RETURN_IF_ERROR(run_once());
  const std::chrono::duration<double, std::micro> dt = std::chrono::steady_clock::now() - t0;
  r.timed = reps;
  r.us = reps > 0 ? dt.count() / runs : 0.0;
  return ds::Status::success();
}

}  // namespace demo
