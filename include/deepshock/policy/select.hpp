// deepshock/policy/select.hpp — the selection step after the logits policies: top-k, Gumbel-max
// sampling and differentially private selection, one block per row.
//
//   ds::policy::topk(logits, B, V, k, ids, values, stream);               // ids, values [B, k]
//   ds::policy::sample(logits, B, V, seed, ids, stream);                  // ids [B]
//   ds::policy::report_noisy_max(scores, B, V, {eps, sens}, Noise::gumbel, seed, ids, stream);
//   ds::policy::private_topk(scores, B, V, k, {eps, sens}, seed, ids, stream);
//
// Order: every selection ranks (score, column) pairs by score descending, ties to the lower
// column, NaN below every number (warp::ranks_before's total order); the k best are written
// best first. The result is a function of the inputs alone (bitwise deterministic; never of
// the launch shape or of thread timing). `values` (optional) receives the input logits of
// the chosen columns, never noisy scores.
//
// Noise (all selections with noise): n(seed, row, col) from one Philox4x32-10 word, counter
// (col, row, 0, kSelectStreamTag) under a key derived from seed (splitmix64 of seed ^ tag, apart
// from privacy/noise.hpp's streams); u = (2 * (word >> 9) + 1) * 2^-24 lies in
// (0, 1) open (2^23 values, none 0 or 1). Gumbel: -log(-log u); Laplace: u < 1/2 ? log 2u :
// -log 2(1 - u). The ranked score is fmaf(scale, n, x). Logs use deepshock's fmaf-only log
// (core/philox.hpp), so host reference and device agree bit for bit.
//
// Sampling: argmax_v (x_v + Gumbel_v) is a draw from softmax(x) (the Gumbel-max trick) up to the
// 23-bit uniform: the noise is bounded to [-2.81, 16.64], so a token whose probability is below
// e^-19.45 (3.6e-9) of the most likely one is never drawn.
//
// Privacy (scores x with l-infinity sensitivity Delta: neighbouring datasets move every score
// by at most Delta; `monotonic` when all scores move in the same direction, e.g. counts):
//  * report_noisy_max, Noise::gumbel: argmax(x + Gumbel(b)), b = 2 Delta / eps (Delta / eps if
//    monotonic). With unbounded Gumbel noise this is the exponential mechanism P(v) ~ exp(x_v / b),
//    which is eps-DP; the 23-bit noise used here is bounded (see Sampling), so the guarantee is
//    the exponential mechanism's up to events of probability ~1e-8 (an approximate-DP delta).
//  * report_noisy_max, Noise::laplace: argmax(x + Laplace(b)) with the same b: eps-DP (Dwork &
//    Roth, Claim 3.9 for monotone Delta / eps; 2 Delta / eps in general).
//  * private_topk (one-shot Gumbel top-k, Durfee & Rogers 2019): the top k of x + Gumbel(b)
//    with b = 2 k Delta / eps (k Delta / eps if monotonic) — i.e. each of the k picks uses the
//    per-pick parameter eps' = eps / k. Durfee & Rogers show that this one-shot draw has exactly
//    the distribution of peeling: k rounds of the exponential mechanism with eps', each over the
//    columns not yet chosen. By basic composition the ranked k-tuple is eps-DP (k eps' = eps).
//    Each round is eps'-bounded-range, so the tuple is also k eps'^2 / 8 = eps^2 / (8k)-zCDP,
//    hence (eps^2/(8k) + eps * sqrt(ln(1/delta) / (2k)), delta)-DP for every delta > 0, which
//    is smaller than eps for large k: a caller who accounts in zCDP may pass a larger eps.
//  Caveats: only the ids are covered (not `values`, not the noisy scores); the guarantee is for
//  exact arithmetic: float scores and a 23-bit uniform bound the noise (Gumbel in about
//  [-2.81, 16.64] * b), which Mironov-style attacks on the float grid can exploit; use
//  integer-valued scores and keep b well above their spacing, or a discrete mechanism, where a
//  formal guarantee is required. Reusing (seed, row) across queries reuses the noise: draw a
//  fresh seed per query.
//
// Kernel: one block per row, 1..8 warps. Each warp scans tiles of 128 columns (lane l takes
// columns base + 32 j + l, j < 4, coalesced) and keeps its k best so far sorted across lanes
// (lane i holds the i-th). A candidate is compared with the warp's k-th best (a register);
// only winners are inserted: a ballot finds the insertion lane, a shfl_up shifts the tail.
// On random data only O(k log(V / k)) of the V elements are inserted, so the scan is one read
// and one compare per element. Warp 0 then inserts the other warps' lists (in warp order) and
// lanes 0..k-1 write the result.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/philox.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/platform/warp.hpp"

namespace deepshock::policy {

/// Noise added to the scores before ranking.
enum class Noise : int { none, gumbel, laplace };

/// Largest k of one selection.
inline constexpr int kMaxSelectK = 32;
/// Philox counter word 3 of selection noise (separates it from other users of the same seed).
inline constexpr std::uint32_t kSelectStreamTag = 0x5E1EC7u;

/// Privacy parameters of a private selection.
struct PrivacyBudget {
  float epsilon = 1.0f;      ///< total pure-DP epsilon of the call, > 0
  float sensitivity = 1.0f;  ///< l-infinity sensitivity Delta of the scores, > 0
  bool monotonic = false;    ///< all scores move in the same direction between neighbours
};

/// Noise scale of report_noisy_max: (monotonic ? 1 : 2) * Delta / eps.
inline float noisy_max_scale(const PrivacyBudget& b) {
  const double s = (b.monotonic ? 1.0 : 2.0) * double(b.sensitivity) / double(b.epsilon);
  const float f = static_cast<float>(s);
  return double(f) < s ? std::nextafter(f, INFINITY) : f;  // round up: never less noise than the budget asks
}
/// Gumbel scale of private_topk: k * (monotonic ? 1 : 2) * Delta / eps (eps / k per pick).
inline float private_topk_scale(const PrivacyBudget& b, int k) {
  const double s = double(k) * (b.monotonic ? 1.0 : 2.0) * double(b.sensitivity) / double(b.epsilon);
  const float f = static_cast<float>(s);
  return double(f) < s ? std::nextafter(f, INFINITY) : f;  // round up: never less noise than the budget asks
}

/// Uniform in (0, 1) open for (seed, row, col): odd multiples of 2^-24.
DEEPSHOCK_HOST_DEVICE float select_uniform(std::uint64_t seed, int row, int col) {
  const Philox4x32::Counter ctr{{static_cast<std::uint32_t>(col), static_cast<std::uint32_t>(row), 0u, kSelectStreamTag}};
  // A purpose-specific key (splitmix64 finaliser of seed ^ tag): no overlap with the noise
  // streams of privacy/noise.hpp or a plain PhiloxStream under the same seed.
  std::uint64_t z = (seed ^ 0x53656C656374ULL) + 0x9E3779B97F4A7C15ULL;  // "Select"
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  const Philox4x32::Key key{{static_cast<std::uint32_t>(z), static_cast<std::uint32_t>(z >> 32)}};
  const std::uint32_t w = Philox4x32::generate(ctr, key)[0];
  return static_cast<float>(2u * (w >> 9) + 1u) * 0x1p-24f;
}
/// Standard Gumbel noise for (seed, row, col): -log(-log u).
DEEPSHOCK_HOST_DEVICE float gumbel_noise(std::uint64_t seed, int row, int col) {
  const float u = select_uniform(seed, row, col);
  return -deepshock::detail::philox_log(-deepshock::detail::philox_log(u));
}
/// Standard Laplace noise (scale 1) for (seed, row, col).
DEEPSHOCK_HOST_DEVICE float laplace_noise(std::uint64_t seed, int row, int col) {
  const float u = select_uniform(seed, row, col);
  return u < 0.5f ? deepshock::detail::philox_log(2.0f * u) : -deepshock::detail::philox_log(2.0f * (1.0f - u));
}
/// The ranked score of element (row, col) with value x.
DEEPSHOCK_HOST_DEVICE float select_score(Noise noise, float scale, std::uint64_t seed, int row, int col, float x) {
  if (noise == Noise::gumbel) return fmaf(scale, gumbel_noise(seed, row, col), x);
  if (noise == Noise::laplace) return fmaf(scale, laplace_noise(seed, row, col), x);
  return x;
}
/// True when (sa, ia) ranks before (sb, ib): higher score, then lower index; NaN last.
DEEPSHOCK_HOST_DEVICE bool select_ranks_before(float sa, int ia, float sb, int ib) {
  const bool a_nan = !(sa == sa), b_nan = !(sb == sb);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && sa != sb) return sa > sb;
  return ia < ib;
}

namespace detail {
/// Argument checks shared by every selection entry point (and the host reference).
inline Status select_check(const float* x, int rows, int vocab, int k, Noise noise, float scale, const int* ids) {
  if (rows < 0) return Status::invalid_argument("rows", "must not be negative, got " + std::to_string(rows));
  if (vocab <= 0) return Status::invalid_argument("vocab", "must be positive, got " + std::to_string(vocab));
  const int kmax = vocab < kMaxSelectK ? vocab : kMaxSelectK;
  if (k < 1 || k > kmax)
    return Status::out_of_range("k", "must be in [1, " + std::to_string(kmax) + "] (min(32, vocab)), got " + std::to_string(k));
  if (noise != Noise::none && noise != Noise::gumbel && noise != Noise::laplace)
    return Status::invalid_argument("noise", "unknown Noise value");
  if (noise != Noise::none && (!(scale >= 0.0f) || !std::isfinite(scale)))
    return Status::invalid_argument("scale", "must be finite and >= 0");
  if (rows == 0) return Status::success();
  if (x == nullptr) return Status::invalid_argument("logits", "must not be null");
  if (ids == nullptr) return Status::invalid_argument("ids", "must not be null");
  return Status::success();
}
inline Status privacy_check(const PrivacyBudget& b) {
  if (!(b.epsilon > 0.0f) || !std::isfinite(b.epsilon))
    return Status::invalid_argument("epsilon", "must be finite and > 0, got " + std::to_string(b.epsilon));
  if (!(b.sensitivity > 0.0f) || !std::isfinite(b.sensitivity))
    return Status::invalid_argument("sensitivity", "must be finite and > 0, got " + std::to_string(b.sensitivity));
  return Status::success();
}
inline Status noisy_max_noise_check(Noise noise) {
  if (noise != Noise::gumbel && noise != Noise::laplace)
    return Status::invalid_argument("noise", "report_noisy_max needs Noise::gumbel or Noise::laplace");
  return Status::success();
}
}  // namespace detail

#if DEEPSHOCK_HAS_KERNELS
namespace detail {

inline constexpr int kSelectMaxWarps = 8;
inline constexpr int kSelectPerLane = 4;  ///< columns per lane and tile (tile = 128 columns)

using SelRanked = warp::Ranked<float>;

/// Inserts `c` into the warp's sorted list (lane i holds the i-th best, index -1 = empty) when
/// it ranks before the k-th entry `kth` (warp-uniform), and refreshes `kth`. All lanes call it
/// with the same `c`.
DEEPSHOCK_DEVICE void select_insert(SelRanked& held, SelRanked& kth, const SelRanked& c, int k, int lane) {
  if (kth.index >= 0 && !warp::ranks_before(c, kth)) return;
  const bool after = lane < k && (held.index < 0 || warp::ranks_before(c, held));
  const unsigned where = __ballot_sync(warp::kFullMask, after);
  const int p = __ffs(static_cast<int>(where)) - 1;  // first lane that c beats; where != 0
  const SelRanked up = warp::shfl_up(held, 1u);
  if (lane > p) held = up;
  else if (lane == p) held = c;
  kth = warp::shfl(held, k - 1);
}

/// One block per row (blockIdx.x): the k best of select_score(...) over the row.
template <Noise N>
DEEPSHOCK_KERNEL void select_kernel(const float* logits, int vocab, int k, float scale, std::uint64_t seed, int* ids, float* values) {
  __shared__ SelRanked stage[kSelectMaxWarps * 32];
  const int row = static_cast<int>(blockIdx.x);
  const int lane = static_cast<int>(threadIdx.x) & 31, wid = static_cast<int>(threadIdx.x) >> 5;
  const int nwarps = static_cast<int>(blockDim.x) >> 5;
  const float* x = logits + static_cast<std::size_t>(row) * static_cast<std::size_t>(vocab);
  const SelRanked empty{0.0f, -1};
  SelRanked held = empty, kth = empty;
  constexpr int kTile = 32 * kSelectPerLane;
  const int tiles = (vocab + kTile - 1) / kTile;
  for (int t = wid; t < tiles; t += nwarps) {
    SelRanked cand[kSelectPerLane];
    DEEPSHOCK_UNROLL
    for (int j = 0; j < kSelectPerLane; ++j) {
      const int c = t * kTile + 32 * j + lane;
      cand[j] = c < vocab ? SelRanked{x[c], c} : empty;
    }
    DEEPSHOCK_UNROLL
    for (int j = 0; j < kSelectPerLane; ++j) {
      if (cand[j].index >= 0) cand[j].score = select_score(N, scale, seed, row, cand[j].index, cand[j].score);
      const bool pass = cand[j].index >= 0 && (kth.index < 0 || warp::ranks_before(cand[j], kth));
      for (unsigned m = __ballot_sync(warp::kFullMask, pass); m != 0u; m &= m - 1u) {
        const SelRanked c = warp::shfl(cand[j], __ffs(static_cast<int>(m)) - 1);
        select_insert(held, kth, c, k, lane);
      }
    }
  }
  stage[threadIdx.x] = lane < k ? held : empty;
  __syncthreads();
  if (wid != 0) return;
  for (int w = 1; w < nwarps; ++w)
    for (int i = 0; i < k; ++i) {
      const SelRanked c = stage[32 * w + i];
      if (c.index >= 0) select_insert(held, kth, c, k, lane);
    }
  if (lane < k) {
    const std::size_t o = static_cast<std::size_t>(row) * static_cast<std::size_t>(k) + static_cast<std::size_t>(lane);
    ids[o] = held.index;
    if (values != nullptr) values[o] = x[held.index];
  }
}

}  // namespace detail

/// The k best columns of each row of score_i = x_i + scale * noise(seed, row, i) (see the file
/// comment; Noise::none ignores scale and seed). ids [rows, k] (required), values [rows, k]
/// (optional: the chosen columns' input values). No privacy claim: see report_noisy_max /
/// private_topk. k in [1, min(32, vocab)]; rows = 0 is a no-op. Asynchronous on `stream`.
inline Status noisy_topk(const float* logits, int rows, int vocab, int k, Noise noise, float scale, std::uint64_t seed, int* ids,
                         float* values, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::select_check(logits, rows, vocab, k, noise, scale, ids));
  if (rows == 0) return Status::success();
  int warps = (vocab + 511) / 512;  // at least 4 tiles per warp
  warps = warps < detail::kSelectMaxWarps ? warps : detail::kSelectMaxWarps;
  const LaunchConfig cfg{dim3(static_cast<unsigned>(rows)), dim3(static_cast<unsigned>(32 * warps)), 0, stream};
  switch (noise) {
    case Noise::gumbel: return launch(detail::select_kernel<Noise::gumbel>, cfg, logits, vocab, k, scale, seed, ids, values);
    case Noise::laplace: return launch(detail::select_kernel<Noise::laplace>, cfg, logits, vocab, k, scale, seed, ids, values);
    case Noise::none: return launch(detail::select_kernel<Noise::none>, cfg, logits, vocab, k, 0.0f, seed, ids, values);
  }
  return Status::invalid_argument("noise", "unknown Noise value");
}

/// Per-row top-k of `logits` [rows, vocab]: ids and (optional) values [rows, k], best first.
inline Status topk(const float* logits, int rows, int vocab, int k, int* ids, float* values, rt::stream_t stream) {
  return noisy_topk(logits, rows, vocab, k, Noise::none, 0.0f, 0, ids, values, stream);
}

/// One token per row drawn from softmax(logits[row]) by Gumbel-max: ids [rows].
inline Status sample(const float* logits, int rows, int vocab, std::uint64_t seed, int* ids, rt::stream_t stream) {
  return noisy_topk(logits, rows, vocab, 1, Noise::gumbel, 1.0f, seed, ids, nullptr, stream);
}

/// eps-DP report-noisy-max per row (see the file comment): ids [rows].
inline Status report_noisy_max(const float* scores, int rows, int vocab, const PrivacyBudget& budget, Noise noise, std::uint64_t seed,
                               int* ids, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::privacy_check(budget));
  DEEPSHOCK_RETURN_IF_ERROR(detail::noisy_max_noise_check(noise));
  return noisy_topk(scores, rows, vocab, 1, noise, noisy_max_scale(budget), seed, ids, nullptr, stream);
}

/// eps-DP one-shot Gumbel top-k per row (Durfee & Rogers 2019; see the file comment): ids
/// [rows, k], in rank order.
inline Status private_topk(const float* scores, int rows, int vocab, int k, const PrivacyBudget& budget, std::uint64_t seed, int* ids,
                           rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::privacy_check(budget));
  return noisy_topk(scores, rows, vocab, k, Noise::gumbel, private_topk_scale(budget, k), seed, ids, nullptr, stream);
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::policy
