// Shared by the host executors' tests (test_layer_host.cpp: the exact executor,
// test_cpu_layer.cpp: the fast one): one layer's weights drawn in fp32 and converted per type,
// odd sizes (H 136, I 200, shared 72), poisoned and strided outputs, random routings with -1
// ids and a hot expert, and the comparison with the double reference, scaled by the case's
// largest |y|.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/moe/expert.hpp"
#include "status_checks.hpp"
#include "test_support.hpp"

namespace ds_host_test {
namespace ds = deepshock;
namespace moe = deepshock::moe;
namespace gate = deepshock::gate;

inline void check_rejects(const ds::Status& st, ds::StatusCode code, const std::string& argument) {
  INFO(st.to_string() << " (expected the argument " << argument << ")");
  CHECK(st.code() == code);
  CHECK(st.message().rfind(argument + ":", 0) == 0);
}

constexpr int kH = 136, kI = 200, kIs = 72;

template <class T>
T to_t(float f) {
  if constexpr (std::is_same_v<T, float>) return f;
  else return T(f);
}
template <class T>
float to_f(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else return v.to_float();
}
template <class T>
T nan_t() {
  if constexpr (std::is_same_v<T, float>) return ds_test::poison_float();
  else if constexpr (std::is_same_v<T, ds::bf16>) return ds::bf16::from_bits(0x7FC0);
  else return ds::fp16::from_bits(0x7E00);
}
template <class T>
std::uint32_t bits_of(T v) {
  if constexpr (std::is_same_v<T, float>) return ds::detail::float_to_bits(v);
  else return v.bits;
}
/// |got - want| <= c * (scale + |want|), scale = the case's largest |y|: a relative tolerance.
template <class T>
double tol_factor() {
  if constexpr (std::is_same_v<T, float>) return 1e-4;
  else if constexpr (std::is_same_v<T, ds::bf16>) return 2e-2;
  else return 1e-2;
}

template <class T>
std::vector<T> convert(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = to_t<T>(v[i]);
  return out;
}
inline std::vector<float> scaled_uniform(std::size_t n, int fan_in, std::mt19937_64& rng) {
  std::vector<float> v = ds_test::uniform(n, rng);
  const float s = 1.0f / std::sqrt(static_cast<float>(fan_in));
  for (float& x : v) x *= s;
  return v;
}

/// Weights of one layer in fp32, drawn once and converted per type: w ~ U(-1, 1) / sqrt(fan_in).
struct Master {
  int E;
  std::vector<float> w_gate, w1, w3, w2, sw1, sw3, sw2, sgate;
  Master(int experts, std::mt19937_64& rng) : E(experts) {
    const std::size_t per = static_cast<std::size_t>(kI) * kH;
    w_gate = scaled_uniform(static_cast<std::size_t>(E) * kH, kH, rng);
    w1 = scaled_uniform(E * per, kH, rng);
    w3 = scaled_uniform(E * per, kH, rng);
    w2 = scaled_uniform(E * per, kI, rng);
    sw1 = scaled_uniform(static_cast<std::size_t>(kIs) * kH, kH, rng);
    sw3 = scaled_uniform(static_cast<std::size_t>(kIs) * kH, kH, rng);
    sw2 = scaled_uniform(static_cast<std::size_t>(kIs) * kH, kIs, rng);
    sgate = scaled_uniform(kH, kH, rng);
  }
};

enum class Shared { none, plain, sigmoid };

template <class T>
struct Model {
  int E;
  std::vector<T> w_gate, w1, w3, w2, sw1, sw3, sw2, sgate;
  explicit Model(const Master& m)
      : E(m.E),
        w_gate(convert<T>(m.w_gate)),
        w1(convert<T>(m.w1)),
        w3(convert<T>(m.w3)),
        w2(convert<T>(m.w2)),
        sw1(convert<T>(m.sw1)),
        sw3(convert<T>(m.sw3)),
        sw2(convert<T>(m.sw2)),
        sgate(convert<T>(m.sgate)) {}
  moe::LayerDims dims(Shared sh, int max_tokens) const { return {kH, kI, sh == Shared::none ? 0 : kIs, max_tokens}; }
  template <class X>
  moe::LayerWeights<T, X> weights(Shared sh) const {
    moe::LayerWeights<T, X> w;
    w.w_gate = w_gate.data();
    w.w1 = w1.data();
    w.w3 = X::kGated ? w3.data() : nullptr;
    w.w2 = w2.data();
    if (sh != Shared::none) {
      w.shared_w1 = sw1.data();
      w.shared_w3 = X::kGated ? sw3.data() : nullptr;
      w.shared_w2 = sw2.data();
    }
    if (sh == Shared::sigmoid) {
      w.shared_gate = sgate.data();
      w.shared_gate_kind = moe::SharedGate::sigmoid;
    }
    return w;
  }
};

/// y [T, y_stride]: NaN in the H columns, a sentinel in the padding.
template <class T>
std::vector<T> poisoned_y(int tokens, int ys) {
  std::vector<T> y(static_cast<std::size_t>(tokens) * ys);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int>(i % ys) < kH ? nan_t<T>() : to_t<T>(7.0f);
  return y;
}

/// Compares y (strided) with the reference; the padding must still hold the sentinel.
template <class T>
void check_y(const std::vector<T>& y, int tokens, int ys, const std::vector<double>& ref) {
  std::vector<float> got(static_cast<std::size_t>(tokens) * kH);
  int pad_changed = 0;
  for (int t = 0; t < tokens; ++t)
    for (int c = 0; c < ys; ++c) {
      const T v = y[static_cast<std::size_t>(t) * ys + c];
      if (c < kH) got[static_cast<std::size_t>(t) * kH + c] = to_f<T>(v);
      else pad_changed += bits_of(v) != bits_of(to_t<T>(7.0f));
    }
  CHECK(pad_changed == 0);
  double scale = 1e-6;
  for (double v : ref) scale = std::max(scale, std::abs(v));
  const double c = tol_factor<T>();
  INFO("largest |y| " << scale);
  const std::string msg = ds_test::compare(got, ref, {c * scale, c});
  INFO(msg);
  CHECK(msg.empty());
  CHECK(std::all_of(got.begin(), got.end(), [](float v) { return std::isfinite(v); }));
}

template <class T>
std::vector<T> random_x(int tokens, int xs, std::mt19937_64& rng) {
  return convert<T>(ds_test::uniform(static_cast<std::size_t>(tokens) * xs, rng));
}

struct Case {
  int E, tokens, k;
  Shared shared;
  bool strided, minus1, hot;
};

/// Distinct ids per token (slot 0 the hot expert 90% of the time when `hot`), some -1 (weight
/// kept non-zero: it must not count), weights U(0, 1) normalised per token.
inline void random_routing(const Case& c, std::mt19937_64& rng, std::vector<int>& ids, std::vector<float>& wts) {
  ids.assign(static_cast<std::size_t>(c.tokens) * c.k, -1);
  wts.assign(ids.size(), 0.0f);
  std::vector<int> perm(static_cast<std::size_t>(c.E));
  for (int t = 0; t < c.tokens; ++t) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    if (c.hot && std::uniform_int_distribution<int>(0, 9)(rng) < 9) std::swap(perm[0], *std::find(perm.begin(), perm.end(), c.E / 3));
    float sum = 0.0f;
    for (int j = 0; j < c.k; ++j) {
      const std::size_t a = static_cast<std::size_t>(t) * c.k + j;
      ids[a] = c.minus1 && std::uniform_int_distribution<int>(0, 5)(rng) == 0 ? -1 : perm[static_cast<std::size_t>(j)];
      wts[a] = std::uniform_real_distribution<float>(0.05f, 1.0f)(rng);
      sum += wts[a];
    }
    for (int j = 0; j < c.k; ++j) wts[static_cast<std::size_t>(t) * c.k + j] /= sum;
  }
}

}  // namespace ds_host_test
