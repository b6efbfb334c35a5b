// deepshock/privacy/release_policy.hpp — the discrete grid release of privacy/add_noise.hpp as a
// logits policy, so a request's differential-privacy noise runs inside the fused pipeline.
//
//   ds::privacy::ReleaseSpec spec{ds::privacy::NoiseKind::laplace, {4, 1}, {-2, 64.0f}, seed, 0};
//   ds::privacy::GridRelease::Params p;
//   ds::Status st = ds::privacy::make_release(spec, first_row, vocab, p);
//   using Release = ds::policy::PerRow<ds::privacy::GridRelease>;   // one entry per request
//
// Element (row, col) becomes release_on_grid(x, grid, noise, seed, stream_id, index) with
// index = (row - first_row) * cols + col: the index the element has in its request's own
// [rows, cols] block. A request's released values are therefore bitwise what
// add_discrete_laplace_noise / add_discrete_gaussian_noise (float, on a grid) give when they run
// on that request's block alone, wherever its rows sit in a batch — which is what lets requests
// with different noise settings (kind, scale, grid, seed) share a step through
// policy::PerRow<GridRelease>, one table entry per request, and keeps the batcher's
// batch-invariance promise (serve/batcher.hpp).
//
// Order in a Pipeline: release before any policy that writes -inf (TokenBan, AllowMask): the
// release clamps to ±bound and would turn a banned token back into a finite value. A policy
// after the release is post-processing and costs no privacy.
//
// Privacy is the caller's as in add_noise.hpp: calibrate the scale to the sensitivity in grid
// steps, use each (seed, stream_id) for one release only, and draw seeds from a cryptographic
// source.
#pragma once

#include <cstdint>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/privacy/noise.hpp"

namespace deepshock::privacy {

enum class NoiseKind : int { none = 0, laplace = 1, gaussian = 2 };

/// One request's release, as a caller states it: the noise (Laplace scale or Gaussian sigma^2,
/// in grid steps), the grid, and the draw identity (seed, stream_id).
struct ReleaseSpec {
  NoiseKind kind = NoiseKind::none;  ///< none: no release
  Rational param{1, 1};              ///< laplace: the scale t; gaussian: sigma^2
  Grid grid{};
  std::uint64_t seed = 0;
  std::uint32_t stream_id = 0;
};

/// Checks a spec on its own (the kind, the noise parameter, the grid); messages name
/// `prefix` + the field ("noise.param: ...").
inline Status validate_release(const ReleaseSpec& spec, const std::string& prefix = "") {
  if (spec.kind == NoiseKind::none) return Status::success();
  const std::string param = prefix + "param";
  if (spec.kind == NoiseKind::laplace) {
    DiscreteLaplace l;
    DEEPSHOCK_RETURN_IF_ERROR(make_discrete_laplace(spec.param, param.c_str(), l));
  } else if (spec.kind == NoiseKind::gaussian) {
    DiscreteGaussian g;
    DEEPSHOCK_RETURN_IF_ERROR(make_discrete_gaussian(spec.param, param.c_str(), g));
  } else {
    return Status::invalid_argument(prefix + "kind", "must be NoiseKind::none, laplace or gaussian");
  }
  GridParams g;
  const Status st = make_grid(spec.grid, g);
  if (!st.ok()) return Status(st.code(), prefix + st.message());
  return Status::success();
}

/// The grid release as a LogitsPolicy (policy/concept.hpp). Build Params with make_release.
struct GridRelease {
  static constexpr const char* kName = "GridRelease";
  struct Params {
    NoiseKind kind = NoiseKind::laplace;  ///< laplace or gaussian
    DiscreteLaplace laplace{};
    DiscreteGaussian gaussian{};
    GridParams grid{};
    std::uint64_t seed = 0;
    std::uint32_t stream_id = 0;
    int first_row = 0;  ///< the batch row where the request's block starts
    int cols = 0;       ///< the request's row length (the pipeline's vocab)
  };
  /// Structural checks (the samplers' constants are make_release's: build Params with it).
  static Status validate(const Params& p, int rows, int vocab) {
    if (p.kind != NoiseKind::laplace && p.kind != NoiseKind::gaussian)
      return Status::invalid_argument("kind", "must be NoiseKind::laplace or gaussian (build Params with make_release)");
    if (p.cols != vocab)
      return Status::invalid_argument("cols", "must equal vocab = " + std::to_string(vocab) + ", got " + std::to_string(p.cols));
    if (p.first_row < 0 || (rows > 0 && p.first_row >= rows))
      return Status::out_of_range("first_row", "must be in [0, rows = " + std::to_string(rows) + "), got " + std::to_string(p.first_row));
    if (p.grid.lambda_exp < GridParams::kMinExp || p.grid.lambda_exp > GridParams::kMaxExp || p.grid.bound_steps < 1 ||
        p.grid.bound_steps > GridParams::kMaxSteps)
      return Status::invalid_argument("grid", "not a validated grid (build Params with make_release)");
    const bool noise_ok = p.kind == NoiseKind::laplace ? p.laplace.num >= 1 && p.laplace.den >= 1
                                                       : p.gaussian.num >= 1 && p.gaussian.den >= 1 && p.gaussian.gamma_den >= 1;
    if (!noise_ok) return Status::invalid_argument("noise", "not a validated sampler (build Params with make_release)");
    return Status::success();
  }
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) {
    const std::uint64_t index =
        static_cast<std::uint64_t>(row - p.first_row) * static_cast<std::uint64_t>(p.cols) + static_cast<std::uint64_t>(col);
    return p.kind == NoiseKind::laplace ? release_on_grid(x, p.grid, p.laplace, p.seed, p.stream_id, index)
                                        : release_on_grid(x, p.grid, p.gaussian, p.seed, p.stream_id, index);
  }
};

/// Builds the Params of `spec` (kind laplace or gaussian) for a request whose block starts at
/// batch row `first_row` and has rows of `cols` elements. Errors name the spec's field.
inline Status make_release(const ReleaseSpec& spec, int first_row, int cols, GridRelease::Params& out) {
  if (spec.kind == NoiseKind::none) return Status::invalid_argument("kind", "NoiseKind::none has no release to build");
  DEEPSHOCK_RETURN_IF_ERROR(validate_release(spec));
  if (first_row < 0) return Status::out_of_range("first_row", "must be >= 0, got " + std::to_string(first_row));
  if (cols < 1) return Status::invalid_argument("cols", "must be >= 1, got " + std::to_string(cols));
  GridRelease::Params p;
  p.kind = spec.kind;
  if (spec.kind == NoiseKind::laplace) DEEPSHOCK_RETURN_IF_ERROR(make_discrete_laplace(spec.param, "param", p.laplace));
  else DEEPSHOCK_RETURN_IF_ERROR(make_discrete_gaussian(spec.param, "param", p.gaussian));
  DEEPSHOCK_RETURN_IF_ERROR(make_grid(spec.grid, p.grid));
  p.seed = spec.seed;
  p.stream_id = spec.stream_id;
  p.first_row = first_row;
  p.cols = cols;
  out = p;
  return Status::success();
}

}  // namespace deepshock::privacy
