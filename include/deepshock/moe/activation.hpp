// deepshock/moe/activation.hpp — expert activation policies (the GEMM 1 epilogue).
//
// An activation policy is a small type with
//   static constexpr bool kGated;                 // true: act(W1 x) * (W3 x); false: act(W1 x)
//   static float  apply(float gate, float up);    // device and host (fp32, the kernels' math)
//   static double apply_ref(double gate, double up);  // the host reference (double)
// For non-gated policies `up` is ignored (the layer then takes no W3).
//
//   SwiGLU: silu(g) * u, silu(g) = g / (1 + exp(-g))     (Mixtral, DeepSeek, Qwen experts)
//   GeGLU:  gelu(g) * u, gelu(g) = g/2 * (1 + erf(g/sqrt 2))  (exact erf form, torch's default)
//   SiLU:   silu(g)
//   GELU:   gelu(g)
//   ClampedSwiGLU (gpt-oss): g' = min(g, 7), u' = clamp(u, -7, 7), (u' + 1) * g' * sigmoid(1.702 g')
#pragma once

#include <cmath>

#include "deepshock/core/config.hpp"

namespace deepshock::act {

namespace detail {
DEEPSHOCK_HOST_DEVICE float silu(float g) { return g / (1.0f + expf(-g)); }
DEEPSHOCK_HOST_DEVICE float gelu(float g) { return 0.5f * g * (1.0f + erff(g * 0.70710678118654752f)); }
inline double silu_ref(double g) { return g / (1.0 + std::exp(-g)); }
inline double gelu_ref(double g) { return 0.5 * g * (1.0 + std::erf(g * 0.70710678118654752440)); }
}  // namespace detail

/// silu(W1 x) * (W3 x).
struct SwiGLU {
  static constexpr bool kGated = true;
  static constexpr const char* kName = "SwiGLU";
  DEEPSHOCK_HOST_DEVICE static float apply(float gate, float up) { return detail::silu(gate) * up; }
  static double apply_ref(double gate, double up) { return detail::silu_ref(gate) * up; }
};

/// gelu(W1 x) * (W3 x), exact (erf) GELU.
struct GeGLU {
  static constexpr bool kGated = true;
  static constexpr const char* kName = "GeGLU";
  DEEPSHOCK_HOST_DEVICE static float apply(float gate, float up) { return detail::gelu(gate) * up; }
  static double apply_ref(double gate, double up) { return detail::gelu_ref(gate) * up; }
};

/// gpt-oss's expert activation: the gate clamped from above and the up projection from both
/// sides at 7, a sigmoid with slope 1.702 (a GELU-like gate), and the up projection shifted by 1:
/// (min(u, 7) clamped at -7, plus 1) * g' / (1 + exp(-1.702 g')), g' = min(g, 7).
struct ClampedSwiGLU {
  static constexpr bool kGated = true;
  static constexpr const char* kName = "ClampedSwiGLU";
  static constexpr double kAlpha = 1.702;  ///< the sigmoid's slope
  static constexpr double kLimit = 7.0;    ///< the clamp
  DEEPSHOCK_HOST_DEVICE static float apply(float gate, float up) {
    constexpr float a = static_cast<float>(kAlpha), lim = static_cast<float>(kLimit);
    const float g = fminf(gate, lim), u = fminf(fmaxf(up, -lim), lim);
    return (u + 1.0f) * (g / (1.0f + expf(-a * g)));
  }
  static double apply_ref(double gate, double up) {
    const double g = std::fmin(gate, kLimit), u = std::fmin(std::fmax(up, -kLimit), kLimit);
    return (u + 1.0) * (g / (1.0 + std::exp(-kAlpha * g)));
  }
};

/// silu(W1 x) (no up projection).
struct SiLU {
  static constexpr bool kGated = false;
  static constexpr const char* kName = "SiLU";
  DEEPSHOCK_HOST_DEVICE static float apply(float gate, float) { return detail::silu(gate); }
  static double apply_ref(double gate, double) { return detail::silu_ref(gate); }
};

/// gelu(W1 x) (no up projection), exact (erf) GELU.
struct GELU {
  static constexpr bool kGated = false;
  static constexpr const char* kName = "GELU";
  DEEPSHOCK_HOST_DEVICE static float apply(float gate, float) { return detail::gelu(gate); }
  static double apply_ref(double gate, double) { return detail::gelu_ref(gate); }
};

}  // namespace deepshock::act
