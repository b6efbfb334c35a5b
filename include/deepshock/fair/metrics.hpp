// deepshock/fair/metrics.hpp — group fairness metrics on the device: per-group counts, selection
// rate, TPR and FPR, demographic parity difference / ratio and equalized-odds difference.
//
// Two steps, so the device part never synchronises the host and can be captured in a graph:
//   1. `group_tallies` (device, stream-ordered): exact integer tallies per group — members,
//      selected, positives, true positives, false positives — plus a counter of elements whose
//      group id is outside [0, G). Layout: TallyField in fair/reference.hpp, tally_words(G) words.
//   2. `finish_metrics` (fair/reference.hpp, host): rates and gaps from a host copy of the tallies.
//      It returns an error naming `group` when the out-of-range counter is non-zero (a kernel
//      cannot report per-element errors without a host synchronisation, so they are counted).
// `group_metrics` does both, with the copy and a stream synchronisation in between: a
// convenience for code that wants the numbers now, not for the hot path.
//
// Determinism: integer atomics only (warp-aggregated into shared memory, then one 64-bit atomic
// per non-zero bin and block), so the tallies are exact and identical on every run and backend.
// Definitions, NaN rules for empty groups and the tie rule `score >= threshold` (NaN scores are
// never selected) are those of fair/reference.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/fair/reference.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"

namespace deepshock::fair {

namespace detail {
inline constexpr int kTallyThreads = 256;           ///< block size (a multiple of 32: whole warps loop together)
inline constexpr int kTallyItems = 4;               ///< elements per thread before the grid stops growing
inline constexpr long long kTallyMaxBlocks = 1024;  ///< caps per-block counts at n / 1024 < 2^32
}  // namespace detail

#if DEEPSHOCK_HAS_KERNELS
namespace kernels {

/// tallies[f * G + g] += the block's count of field f for group g; tallies[5G] += out-of-range
/// ids (tallies zeroed beforehand). Each warp walks 32 consecutive elements per step; lanes
/// holding the same (group, selected, positive) key combine with one shared atomic by a leader.
template <int Threads>
DEEPSHOCK_KERNEL void group_tally_kernel(const float* score, const std::uint8_t* predictions, const int* group, const std::uint8_t* label,
                                         long long n, int G, float threshold, unsigned long long* tallies) {
  static_assert(Threads % 32 == 0, "group_tally_kernel needs whole warps");
  __shared__ unsigned hist[kTallyFields * kMaxGroups];
  __shared__ unsigned bad;
  const int tid = static_cast<int>(threadIdx.x);
  for (int i = tid; i < kTallyFields * G; i += Threads) hist[i] = 0u;
  if (tid == 0) bad = 0u;
  __syncthreads();
  const int lane = tid & 31;
  const long long stride = static_cast<long long>(gridDim.x) * Threads;
  // The loop bound depends on the warp only, so all 32 lanes take every step together.
  for (long long base = static_cast<long long>(blockIdx.x) * Threads + (tid & ~31); base < n; base += stride) {
    const long long j = base + lane;
    int key = -1;  // -1: past the end; -2: group id out of range; else g * 4 + selected * 2 + positive
    if (j < n) {
      const int g = group[j];
      if (g < 0 || g >= G) {
        key = -2;
      } else {
        const bool sel = predictions != nullptr ? predictions[j] != 0 : score[j] >= threshold;
        const bool pos = label != nullptr && label[j] != 0;
        key = g * 4 + (sel ? 2 : 0) + (pos ? 1 : 0);
      }
    }
    const unsigned peers = __match_any_sync(0xffffffffu, key);
    if (key == -1 || lane != __ffs(static_cast<int>(peers)) - 1) continue;
    const unsigned c = static_cast<unsigned>(__popc(peers));
    if (key == -2) {
      atomicAdd(&bad, c);
      continue;
    }
    const int g = key >> 2;
    const bool sel = (key & 2) != 0, pos = (key & 1) != 0;
    atomicAdd(&hist[kCount * G + g], c);
    if (sel) atomicAdd(&hist[kSelected * G + g], c);
    if (pos) atomicAdd(&hist[kPositives * G + g], c);
    if (sel && pos) atomicAdd(&hist[kTruePositives * G + g], c);
    if (sel && !pos && label != nullptr) atomicAdd(&hist[kFalsePositives * G + g], c);
  }
  __syncthreads();
  for (int i = tid; i < kTallyFields * G; i += Threads)
    if (hist[i] != 0u) atomicAdd(&tallies[i], static_cast<unsigned long long>(hist[i]));
  if (tid == 0 && bad != 0u) atomicAdd(&tallies[kTallyFields * G], static_cast<unsigned long long>(bad));
}

}  // namespace kernels

/// Writes the integer tallies of `in` (device arrays, see MetricsInput) to `tallies`, a device
/// array of tally_words(in.num_groups) words, which is overwritten (zeroed first on `stream`).
/// Elements whose group id is outside [0, G) are counted in the last word only; finish_metrics
/// reports them. n = 0 writes zeros. Never synchronises the host.
inline Status group_tallies(const MetricsInput& in, unsigned long long* tallies, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_metrics_input(in));
  if (tallies == nullptr) return Status::invalid_argument("tallies", "must not be null");
  DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(tallies, 0, tally_words(in.num_groups) * sizeof(unsigned long long), stream));
  if (in.n == 0) return Status::success();
  constexpr long long per_block = static_cast<long long>(detail::kTallyThreads) * detail::kTallyItems;
  const long long want = (in.n + per_block - 1) / per_block;
  const unsigned blocks = static_cast<unsigned>(want < detail::kTallyMaxBlocks ? want : detail::kTallyMaxBlocks);
  return launch(kernels::group_tally_kernel<detail::kTallyThreads>, {dim3(blocks), dim3(detail::kTallyThreads), 0, stream}, in.score,
                in.predictions, in.group, in.label, in.n, in.num_groups, in.threshold, tallies);
}

/// group_tallies, a copy of the tallies to the host, a synchronisation of `stream`, then
/// finish_metrics. `tallies` is device scratch of tally_words(G) words. Blocks the host.
inline Status group_metrics(const MetricsInput& in, unsigned long long* tallies, GroupMetrics& out, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(group_tallies(in, tallies, stream));
  std::vector<unsigned long long> host(tally_words(in.num_groups));
  DEEPSHOCK_RETURN_IF_ERROR(
      rt::memcpy_async(host.data(), tallies, host.size() * sizeof(unsigned long long), rt::Copy::device_to_host, stream));
  DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(stream));
  return finish_metrics(host.data(), in.num_groups, in.label != nullptr, out);
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::fair
