// deepshock/privacy/dp_sgd.hpp — one DP-SGD aggregation step on the device, and Poisson sampling.
//
// DP-SGD (Abadi et al. 2016): sample each example independently with
// rate q (Poisson sampling), clip each sampled example's gradient to L2 norm C, sum, add
// N(0, sigma^2 C^2) per coordinate, and divide by the *expected* batch size q N (not the realised
// one, which would leak it). Empty batches are legal: the output is then the noise alone.
//
// dp_sgd_aggregate runs two kernels, both deterministic (bitwise equal on every rerun):
//   1. one block per example: sum of squares in double (strided per thread, then the library's
//      fixed block tree), clip factor f_b = min(1, C / ||g_b||) stored in the workspace (double);
//      unsampled examples, and examples whose norm is not finite (NaN / inf entries), get 0 and
//      are skipped entirely, so they can neither poison the sum nor reveal themselves;
//   2. one thread per parameter p: acc = sum over b in index order of f_b g_b[p] (double),
//      plus sigma C z_p with z_p = dp_sgd_noise(seed, step, param_offset + p) (Box–Muller in
//      double on 53-bit Philox uniforms, domain dp_sgd_noise), out[p] = float(acc / (q N)).
// The host reference (reference_noise.hpp) computes the same in double with sequential sums; the
// only differences are summation order and FMA contraction (a few ulps of double) before the
// final rounding to float.
//
// The Gaussian noise here is continuous floating-point noise, as in every DP-SGD implementation;
// the discrete samplers (add_noise.hpp) are the float-safe choice for released statistics.
// The noise seed must come from a cryptographic source and stay secret; each step uses its own
// stream (`step`, < 2^32).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/privacy/noise.hpp"
#include "deepshock/privacy/reference_noise.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/block.hpp"
#endif

namespace deepshock::privacy {

/// Bytes of workspace dp_sgd_aggregate needs for B examples: B doubles, rounded up to 256
/// (0 when B == 0).
inline std::size_t dp_sgd_workspace_bytes(int B) { return B > 0 ? (static_cast<std::size_t>(B) * sizeof(double) + 255) / 256 * 256 : 0; }

/// Host: Poisson sampling of a batch. mask[b] = 1 if example b is taken at `step`, else 0, for
/// b in [0, B): independent Bernoulli(q) draws, poisson_sampled(seed, step, b, q) (noise.hpp).
/// `sampled_count`, if not null, receives the number taken. q must lie in [0, 1].
inline Status poisson_sample_mask(std::uint8_t* mask, int B, double q, std::uint64_t seed, std::uint32_t step,
                                  int* sampled_count = nullptr) {
  if (B < 0) return Status::invalid_argument("B", "must be >= 0, got " + std::to_string(B));
  if (!(q >= 0.0 && q <= 1.0)) return Status::invalid_argument("q", "must be in [0, 1]");
  if (B > 0 && mask == nullptr) return Status::invalid_argument("mask", "must not be null");
  int count = 0;
  for (int b = 0; b < B; ++b) {
    const bool taken = poisson_sampled(seed, step, static_cast<std::uint64_t>(b), q);
    mask[b] = taken ? 1 : 0;
    count += taken ? 1 : 0;
  }
  if (sampled_count != nullptr) *sampled_count = count;
  return Status::success();
}

#if DEEPSHOCK_HAS_KERNELS
namespace detail {
inline constexpr int kClipThreads = 256;
inline constexpr int kSumThreads = 256;
inline constexpr std::int64_t kSumMaxBlocks = 4096;
}  // namespace detail

namespace kernels {

/// Block b: factor[b] = clip factor of row b of grads [B, P] (0 if not sampled).
template <int Threads>
DEEPSHOCK_KERNEL void dp_clip_factor_kernel(const float* grads, const std::uint8_t* mask, std::int64_t P, double clip_norm,
                                            double* factor) {
  __shared__ double scratch[block::kScratchWords];
  const int b = static_cast<int>(blockIdx.x);
  if (mask != nullptr && mask[b] == 0) {  // the whole block leaves together
    if (threadIdx.x == 0) factor[b] = 0.0;
    return;
  }
  const float* row = grads + static_cast<std::int64_t>(b) * P;
  double ss = 0.0;
  for (std::int64_t p = threadIdx.x; p < P; p += Threads) {
    const double g = static_cast<double>(row[p]);
    ss += g * g;
  }
  const double total = block::reduce_sum(ss, scratch);
  if (threadIdx.x == 0) factor[b] = detail::clip_factor(std::sqrt(total), clip_norm);
}

/// out[p] = (sum_b factor[b] grads[b, p] + noise_std z_p) / divisor, examples in index order.
template <int Threads>
DEEPSHOCK_KERNEL void dp_noisy_sum_kernel(const float* grads, const double* factor, int B, std::int64_t P, double noise_std, double divisor,
                                          std::uint64_t seed, std::uint32_t step, std::uint64_t param_offset, float* out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * Threads;
  for (std::int64_t p = static_cast<std::int64_t>(blockIdx.x) * Threads + threadIdx.x; p < P; p += stride) {
    double acc = 0.0;
    for (int b = 0; b < B; ++b) {
      const double f = factor[b];
      if (f != 0.0) acc += f * static_cast<double>(grads[static_cast<std::int64_t>(b) * P + p]);
    }
    acc += noise_std * static_cast<double>(dp_sgd_noise(seed, step, param_offset + static_cast<std::uint64_t>(p)));
    out[p] = static_cast<float>(acc / divisor);
  }
}

}  // namespace kernels

/// One DP-SGD aggregation (see the file comment). per_example_grads [B, P] row-major (device);
/// sampled_mask [B] (device, 1 = in the batch) or null when every row is in the batch (the caller
/// already gathered the sampled examples); out [P] (device) is overwritten. Needs
/// dp_sgd_workspace_bytes(B) bytes of `workspace` (device, 16-byte aligned, contents ignored).
/// B = 0, P = 0 and masks with no sampled example are legal.
inline Status dp_sgd_aggregate(const float* per_example_grads, const std::uint8_t* sampled_mask, int B, std::int64_t P,
                               const DpSgdParams& params, float* out, void* workspace, std::size_t workspace_bytes, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_dp_sgd_args(per_example_grads, B, P, params, out));
  const std::size_t need = dp_sgd_workspace_bytes(B);
  if (need > 0) {
    if (workspace == nullptr)
      return Status::invalid_argument("workspace", "must not be null (dp_sgd_workspace_bytes(B) = " + std::to_string(need) + ")");
    if (workspace_bytes < need)
      return Status::resource_exhausted("workspace_bytes",
                                        std::to_string(workspace_bytes) + " bytes given, " + std::to_string(need) + " needed");
    if (reinterpret_cast<std::uintptr_t>(workspace) % 16 != 0) return Status::invalid_argument("workspace", "must be aligned to 16 bytes");
  }
  if (P == 0) return Status::success();
  auto* factor = static_cast<double*>(workspace);
  if (B > 0)
    DEEPSHOCK_RETURN_IF_ERROR(launch(kernels::dp_clip_factor_kernel<detail::kClipThreads>,
                                     {dim3(static_cast<unsigned>(B)), dim3(detail::kClipThreads), 0, stream}, per_example_grads,
                                     sampled_mask, P, static_cast<double>(params.clip_norm), factor));
  const std::int64_t want = (P + detail::kSumThreads - 1) / detail::kSumThreads;
  const unsigned blocks = static_cast<unsigned>(want < detail::kSumMaxBlocks ? want : detail::kSumMaxBlocks);
  const double noise_std = static_cast<double>(params.noise_multiplier) * static_cast<double>(params.clip_norm);
  return launch(kernels::dp_noisy_sum_kernel<detail::kSumThreads>, {dim3(blocks), dim3(detail::kSumThreads), 0, stream}, per_example_grads,
                factor, B, P, noise_std, static_cast<double>(params.expected_batch_size), params.seed, params.step, params.param_offset,
                out);
}

#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::privacy
