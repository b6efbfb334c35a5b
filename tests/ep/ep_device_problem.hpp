// The layer of the device expert-parallel tests (ep_device_tests.inc, ep_nccl_tests.inc): a
// 13-expert top-3 bf16 layer with a sigmoid-gated shared expert, its weights on the host, device
// copies of the whole layer or of one rank's experts, and the single-rank reference run.
#pragma once

#include <cstring>
#include <random>
#include <vector>

#include "deepshock/ep/device_ep.hpp"
#include "deepshock/ep/placement.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/moe/layer.hpp"
#include "device_test_helpers.hpp"
#include "test_support.hpp"

namespace ep_test {
namespace ds = deepshock;
namespace ep = deepshock::ep;
namespace moe = deepshock::moe;
namespace rt = deepshock::rt;
using ds_test::download;
using ds_test::upload_nonnull;

constexpr int kE = 13, kK = 3;
using Gate = ds::gate::SoftmaxTopK<ds::Experts<kE>, ds::TopK<kK>>;
using T = ds::bf16;
using L = moe::Layer<Gate, moe::Expert<>, T>;
inline const moe::LayerDims kDims{64, 48, 32, 48};  // hidden, intermediate, shared, max tokens per rank

/// The layer's weights on the host, and device copies of the whole layer or of one rank's share.
struct Weights {
  std::vector<T> wg, w1, w3, w2, s1, s3, s2, sg;
  std::vector<float> bias;  // the gate projection's bias (skew)
  explicit Weights(std::mt19937_64& rng) {
    auto fill = [&](std::vector<T>& v, std::size_t n, float a) {
      for (const float f : ds_test::uniform(n, rng, -a, a)) v.push_back(T(f));
    };
    const std::size_t H = kDims.hidden, I = kDims.intermediate, Is = kDims.shared_intermediate;
    fill(wg, kE * H, 0.5f);
    fill(w1, kE * I * H, 0.3f);
    fill(w3, kE * I * H, 0.3f);
    fill(w2, kE * H * I, 0.3f);
    fill(s1, Is * H, 0.3f);
    fill(s3, Is * H, 0.3f);
    fill(s2, H * Is, 0.3f);
    fill(sg, H, 0.3f);
    bias.assign(kE, 0.0f);
  }
};

struct DeviceWeights {
  rt::DeviceBuffer<T> wg, w1, w3, w2, s1, s3, s2, sg;
  rt::DeviceBuffer<float> bias;
  moe::LayerWeights<T, moe::Expert<>> w;
  /// The experts in `held` (all of them when empty), in that order.
  DeviceWeights(const Weights& h, const std::vector<int>& held) {
    const std::size_t up = std::size_t(kDims.intermediate) * kDims.hidden, down = up;
    std::vector<T> e1, e3, e2;
    for (int e = 0; e < kE; ++e) {
      const int pick = held.empty() ? e : (e < int(held.size()) ? held[std::size_t(e)] : -1);
      if (pick < 0) break;
      e1.insert(e1.end(), h.w1.begin() + std::ptrdiff_t(pick * up), h.w1.begin() + std::ptrdiff_t((pick + 1) * up));
      e3.insert(e3.end(), h.w3.begin() + std::ptrdiff_t(pick * up), h.w3.begin() + std::ptrdiff_t((pick + 1) * up));
      e2.insert(e2.end(), h.w2.begin() + std::ptrdiff_t(pick * down), h.w2.begin() + std::ptrdiff_t((pick + 1) * down));
    }
    wg = upload_nonnull(h.wg), w1 = upload_nonnull(e1), w3 = upload_nonnull(e3), w2 = upload_nonnull(e2);
    s1 = upload_nonnull(h.s1), s3 = upload_nonnull(h.s3), s2 = upload_nonnull(h.s2), sg = upload_nonnull(h.sg);
    bias = upload_nonnull(h.bias);
    w.w_gate = wg.data();
    w.w_gate_bias = bias.data();
    w.w1 = w1.data();
    w.w3 = w3.data();
    w.w2 = w2.data();
    w.shared_w1 = s1.data();
    w.shared_w3 = s3.data();
    w.shared_w2 = s2.data();
    w.shared_gate = sg.data();
    w.shared_gate_kind = moe::SharedGate::sigmoid;
  }
};

/// y of the whole layer on one rank for all `tokens` rows of x.
inline std::vector<T> single_rank(const Weights& h, const std::vector<T>& x, int tokens) {
  moe::LayerDims d = kDims;
  d.max_tokens = tokens;
  L layer(d, ds::gate::default_params<Gate>(), ep::batch_invariant());  // routes as DeviceEp's home layer
  REQUIRE(layer.status().ok());
  DeviceWeights dw(h, {});
  auto dx = upload_nonnull(x);
  auto dy = ds_test::poisoned_nonnull<T>(x.size());
  rt::DeviceBuffer<unsigned char> ws;
  REQUIRE(ws.allocate(std::max<std::size_t>(layer.workspace_bytes(), 1)).ok());
  moe::LayerOutputs<T> out;
  out.y = dy.data();
  DS_REQUIRE_OK(layer.run(moe::LayerInputs<T>{dx.data(), tokens, 0, nullptr}, dw.w, out, ws.data(), ws.size(), nullptr));
  DS_REQUIRE_OK(rt::device_synchronize());
  return download(dy, x.size());
}

inline bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace ep_test
