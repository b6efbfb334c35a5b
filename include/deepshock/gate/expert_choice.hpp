// deepshock/gate/expert_choice.hpp — expert-choice routing (Zhou et al. 2022), the router's
// second kernel family: every expert picks its tokens, instead of every token its experts.
//
//   const int k = ds::gate::expert_choice_capacity(T, 256, 2.0f);        // k_e tokens per expert
//   std::size_t ws = ds::gate::expert_choice_workspace_bytes(T, 256, 2.0f);
//   ds::gate::ExpertChoiceOutputs out{tokens, weights, counts};           // [E,k], [E,k], [T]
//   ds::Status st = ds::gate::expert_choice<256>(logits, T, 256, 2.0f, out, workspace, ws, stream);
//
// Semantics (shared with gate/reference_expert_choice.hpp, the host oracle): S = softmax over
// each token's E logits in fp32 (max-subtracted); expert e takes the k_e tokens with the
// largest S[t, e] (k_e = min(T, ceil(T*c/E)), exact — see expert_choice_capacity), in
// descending score, ties to the lower token id; its weight for a token is S[t, e]. A token may
// be chosen by 0 to E experts. Non-finite logits (NaN, +-Inf) are left out of the softmax
// (score 0) and their (token, expert) pair is never chosen; when fewer than k_e tokens are
// choosable for an expert, its last slots hold token -1, weight 0 (types.hpp's convention).
// Results are bitwise reproducible run to run.
//
// API shape: plain functions templated on the expert count E (2..1024, the only compile-time
// parameter: it sizes each softmax lane's registers); the capacity factor is a run-time float.
// A layer-level gating policy can wrap them. Nothing allocates or synchronises the host; T = 0
// is a valid no-op, so the call can be captured in a CUDA graph.
//
// Design — two kernels on the stream:
//  1. softmax: a group of min(32, pow2(E)) lanes per token (a whole warp for E > 16; 4 tokens
//     a warp for E = 8), reduced by xor butterflies; the block stages its scores as
//     order-preserving uint32 keys in shared memory and writes them transposed, expert-major
//     ([E][T] in the workspace), so the selection reads each expert's column contiguously.
//     key = bits(S) + 1 for a finite logit (S >= 0, so float order = unsigned order), 0 for a
//     non-finite one, below every choosable key. It also writes S ([T, E]) when asked, zeroes
//     token_expert_count and counts non-finite logits.
//  2. select: one block per expert. (a) Radix select of the k_e-th largest key: 4 passes of
//     8-bit digits, MSB first, each a shared-memory histogram (integer atomics) of the keys
//     that match the digits found so far; warp 0 scans the 256 bins from the top to find the
//     digit holding the k_e-th key. Result: threshold key h and `need`, the number of keys
//     equal to h to take. (b) Gather: keys above h (and the keys equal to h when all of them
//     are taken) go to slots claimed with a shared atomic counter; when only some ties are
//     taken, the first `need` of them in token order are placed by a block exclusive scan over
//     token tiles (stopping once enough are found). h = 0 means fewer than k_e choosable
//     tokens: only keys > 0 are taken. Each entry is the 64-bit
//     (key << 32) | (2^32 - 1 - token), unique per token, so (c) a block bitonic sort
//     (descending) over the next power of two >= k_e, padded with 0, yields score order with
//     ties to the lower token whatever order the atomics gave: the result is deterministic.
//     The sort runs in dynamic shared memory when it fits `max_sort_smem_bytes`, otherwise in
//     the workspace (global memory; __syncthreads orders it within the block).
//     Cost per expert: 5 reads of T keys + O(k log^2 k); works for any T <= 2^24 and k_e <= T.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/gate/reference_expert_choice.hpp"  // expert_choice_capacity: one definition for both
#include "deepshock/gate/types.hpp"
#include "deepshock/platform/block.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/platform/warp.hpp"

namespace deepshock::gate {

/// Device pointers expert-choice routing writes.
struct ExpertChoiceOutputs {
  int* expert_tokens = nullptr;       ///< [E, k_e] chosen tokens, best first; -1 = empty slot. Required.
  float* expert_weights = nullptr;    ///< [E, k_e] S[token, e]; 0 for an empty slot. Required.
  int* token_expert_count = nullptr;  ///< [T] experts that chose each token. Required.
  float* scores = nullptr;            ///< [T, E] the softmax scores S. Optional.
  int* nonfinite_count = nullptr;     ///< [1] non-finite logits seen (zeroed by the call). Optional.
};

/// Launch shape (numbers only; results never depend on them).
struct ExpertChoiceTuning {
  int softmax_warps = 8;     ///< warps per softmax block, 1..32 (a warp routes 32 / pow2(E) tokens, at least 1)
  int select_threads = 256;  ///< most threads per expert block (a warp per 256 tokens below that); multiple of 32, 32..1024
  std::size_t max_sort_smem_bytes = 48 * 1024;  ///< sort in shared memory while 8 * pow2(k_e) bytes fit; else in the workspace
};

/// Largest token count one call accepts.
inline constexpr int kExpertChoiceMaxTokens = 1 << 24;

namespace detail {
inline std::size_t ec_align(std::size_t bytes) { return (bytes + 255) / 256 * 256; }
/// Smallest power of two >= k (1 for k <= 1).
inline int ec_pow2_ceil(int k) {
  int n = 1;
  while (n < k) n <<= 1;
  return n;
}
inline std::size_t ec_keys_bytes(int T, int E) {
  return ec_align(static_cast<std::size_t>(T) * static_cast<std::size_t>(E) * sizeof(std::uint32_t));
}
inline bool ec_sort_in_smem(int k, const ExpertChoiceTuning& tuning) {
  return static_cast<std::size_t>(ec_pow2_ceil(k)) * sizeof(unsigned long long) <= tuning.max_sort_smem_bytes;
}
}  // namespace detail

/// Workspace bytes for T tokens, E experts and capacity factor c under `tuning`: the
/// transposed keys (4·T·E bytes) plus, when the sort does not fit shared memory, 8·E·pow2(k_e).
inline std::size_t expert_choice_workspace_bytes(int T, int E, float capacity_factor, const ExpertChoiceTuning& tuning = {}) {
  if (T <= 0 || E <= 0) return 0;
  const int k = expert_choice_capacity(T, E, capacity_factor);
  std::size_t bytes = detail::ec_keys_bytes(T, E);
  if (!detail::ec_sort_in_smem(k, tuning))
    bytes += detail::ec_align(static_cast<std::size_t>(E) * static_cast<std::size_t>(detail::ec_pow2_ceil(k)) * sizeof(unsigned long long));
  return bytes;
}
/// Workspace bytes that cover every capacity factor (k_e = T) under the default tuning.
inline std::size_t expert_choice_workspace_bytes(int T, int E) { return expert_choice_workspace_bytes(T, E, static_cast<float>(E)); }

namespace detail {
/// Argument checks of expert_choice(); pointers are checked only when T > 0.
inline Status ec_validate(const float* logits, int T, int num_experts, int E, float c, const ExpertChoiceOutputs& out,
                          const void* workspace, std::size_t workspace_bytes, const ExpertChoiceTuning& tuning) {
  if (num_experts != E)
    return Status::invalid_argument("num_experts", "is " + std::to_string(num_experts) + " but expert_choice<" + std::to_string(E) +
                                                       "> was instantiated for " + std::to_string(E) + " experts");
  if (T < 0) return Status::invalid_argument("num_tokens", "must not be negative, got " + std::to_string(T));
  if (T > kExpertChoiceMaxTokens)
    return Status::out_of_range("num_tokens", std::to_string(T) + " exceeds the limit of " + std::to_string(kExpertChoiceMaxTokens));
  if (!(c > 0.0f) || !std::isfinite(c))
    return Status::invalid_argument("capacity_factor", "must be finite and > 0, got " + std::to_string(c));
  if (tuning.softmax_warps < 1 || tuning.softmax_warps > 32)
    return Status::invalid_argument("tuning.softmax_warps", "must be between 1 and 32");
  if (tuning.select_threads < 32 || tuning.select_threads > 1024 || tuning.select_threads % 32 != 0)
    return Status::invalid_argument("tuning.select_threads", "must be a multiple of 32 between 32 and 1024");
  if (T == 0) return Status::success();
  if (logits == nullptr) return Status::invalid_argument("logits", "must not be null");
  if (out.expert_tokens == nullptr) return Status::invalid_argument("expert_tokens", "must not be null");
  if (out.expert_weights == nullptr) return Status::invalid_argument("expert_weights", "must not be null");
  if (out.token_expert_count == nullptr) return Status::invalid_argument("token_expert_count", "must not be null");
  const std::size_t need = expert_choice_workspace_bytes(T, E, c, tuning);
  if (workspace == nullptr) return Status::invalid_argument("workspace", "must not be null (" + std::to_string(need) + " bytes needed)");
  if (reinterpret_cast<std::uintptr_t>(workspace) % 16 != 0) return Status::invalid_argument("workspace", "must be 16-byte aligned");
  if (workspace_bytes < need)
    return Status::resource_exhausted("workspace_bytes",
                                      std::to_string(workspace_bytes) + " bytes given, " + std::to_string(need) + " needed");
  return Status::success();
}
}  // namespace detail

#if DEEPSHOCK_HAS_KERNELS
namespace detail {

/// True for a finite float (exponent bits not all set); immune to fast-math.
DEEPSHOCK_DEVICE bool ec_finite(float x) { return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u; }

/// Lanes that share one token in the softmax: E rounded up to a power of two, at most 32.
constexpr int ec_lanes(int E) {
  int lanes = 2;
  while (lanes < E && lanes < 32) lanes <<= 1;
  return lanes;
}

/// Butterfly reduction within aligned groups of L lanes (all 32 lanes call it). Each step
/// combines the same two values on both partners and `op` is commutative, so every lane of a
/// group ends with the bitwise same result.
template <int L, class T, class Op>
DEEPSHOCK_DEVICE T ec_group_reduce(T v, Op op) {
  DEEPSHOCK_UNROLL
  for (int offset = L / 2; offset > 0; offset >>= 1) v = op(v, warp::shfl_xor(v, offset));
  return v;
}

/// Kernel 1: softmax per token (a group of ec_lanes(E) lanes each) -> scores (optional,
/// [T, E]) and keys ([E][T]). Block: whole warps; blockDim.x / ec_lanes(E) tokens.
template <int E>
DEEPSHOCK_KERNEL void __launch_bounds__(1024) expert_choice_softmax_kernel(const float* logits, int T, float* scores, std::uint32_t* keys,
                                                                           int* token_expert_count, int* nonfinite_count) {
  constexpr int L = ec_lanes(E);
  constexpr int kPerLane = (E + L - 1) / L;
  static_assert(kPerLane <= 32, "one bit per logit of a lane in `finite`");
  std::uint32_t* tile = dynamic_smem<std::uint32_t>();  // [E][TB]: this block's keys, expert-major
  const int TB = static_cast<int>(blockDim.x) / L;      // tokens per block
  const int slot = static_cast<int>(threadIdx.x) / L;
  const int lane = static_cast<int>(threadIdx.x) % L;
  const int t0 = static_cast<int>(blockIdx.x) * TB;
  const int t = t0 + slot;
  const bool live = t < T;  // dead groups still join the shuffles
  const float* row = logits + static_cast<std::size_t>(live ? t : 0) * E;
  float x[kPerLane];
  unsigned finite = 0;  // bit j: the lane's j-th logit is finite
  float mx = std::numeric_limits<float>::lowest();
  int bad = 0;
  for (int j = 0; j < kPerLane; ++j) {
    const int i = lane + L * j;
    x[j] = live && i < E ? row[i] : 0.0f;
    if (!live || i >= E) continue;
    if (ec_finite(x[j])) {
      finite |= 1u << j;
      mx = x[j] > mx ? x[j] : mx;
    } else {
      ++bad;
    }
  }
  mx = ec_group_reduce<L>(mx, warp::Max{});
  float sum = 0.0f;
  for (int j = 0; j < kPerLane; ++j) {
    x[j] = (finite >> j & 1u) ? ::expf(x[j] - mx) : 0.0f;
    sum += x[j];
  }
  sum = ec_group_reduce<L>(sum, warp::Sum{});  // >= 1 when any logit is finite (the max gives exp(0))
  if (live) {
    for (int j = 0; j < kPerLane; ++j) {
      const int i = lane + L * j;
      if (i >= E) continue;
      const bool fin = (finite >> j & 1u) != 0;
      const float s = fin ? x[j] / sum : 0.0f;
      if (scores != nullptr) scores[static_cast<std::size_t>(t) * E + i] = s;
      tile[i * TB + slot] = fin ? __float_as_uint(s) + 1u : 0u;
    }
    if (lane == 0) token_expert_count[t] = 0;
  }
  if (nonfinite_count != nullptr && bad > 0) atomicAdd(nonfinite_count, bad);  // integer: order-free
  __syncthreads();
  const int valid = T - t0 < TB ? T - t0 : TB;  // tokens of this block
  for (int idx = static_cast<int>(threadIdx.x); idx < E * TB; idx += static_cast<int>(blockDim.x)) {
    const int i = idx / TB, j = idx - i * TB;
    if (j < valid) keys[static_cast<std::size_t>(i) * T + t0 + j] = tile[idx];
  }
}

/// (key << 32) | (2^32 - 1 - token): descending order = score descending, then token ascending.
DEEPSHOCK_DEVICE unsigned long long ec_pack(std::uint32_t key, int token) {
  return (static_cast<unsigned long long>(key) << 32) | (0xffffffffu - static_cast<unsigned>(token));
}

/// Kernel 2: one block per expert (blockIdx.x): radix select, gather, bitonic sort, write.
/// `sort_global` is null when the sort runs in dynamic shared memory (8 * n_sort bytes).
template <int E>
DEEPSHOCK_KERNEL void __launch_bounds__(1024)
    expert_choice_select_kernel(const std::uint32_t* keys, int T, int k, int n_sort, unsigned long long* sort_global, int* expert_tokens,
                                float* expert_weights, int* token_expert_count) {
  __shared__ int hist[256];
  __shared__ int scratch[block::kScratchWords];
  __shared__ unsigned s_digit;
  __shared__ int s_above, s_equal, s_slot;
  const int e = static_cast<int>(blockIdx.x);
  const int tid = static_cast<int>(block::thread_rank());
  const int nt = static_cast<int>(block::num_threads());
  const std::uint32_t* col = keys + static_cast<std::size_t>(e) * T;

  // (a) Radix select: the k-th largest key `h`, and `need` = how many keys equal to h to take.
  std::uint32_t prefix = 0, mask = 0;
  int need = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += nt) hist[i] = 0;
    __syncthreads();
    for (int t = tid; t < T; t += nt) {
      const std::uint32_t key = col[t];
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1);
    }
    __syncthreads();
    if (tid < 32) {  // warp 0: lane l owns bins 255-8l .. 248-8l, scanned from the top
      int local = 0;
      for (int j = 0; j < 8; ++j) local += hist[255 - 8 * tid - j];
      int total = 0;
      int acc = warp::exclusive_scan_sum(local, total);
      for (int j = 0; j < 8; ++j) {
        const int bin = 255 - 8 * tid - j;
        const int c = hist[bin];
        if (acc < need && need <= acc + c) {  // exactly one bin holds the need-th key
          s_digit = static_cast<unsigned>(bin);
          s_above = acc;
          s_equal = c;
        }
        acc += c;
      }
    }
    __syncthreads();
    prefix |= s_digit << shift;
    mask |= 0xffu << shift;
    need -= s_above;
  }
  const std::uint32_t h = prefix;
  const int equal = s_equal;  // keys equal to h

  // (b) Gather the chosen (key, token) pairs into the sort buffer, padded with 0.
  unsigned long long* buf =
      sort_global != nullptr ? sort_global + static_cast<std::size_t>(e) * n_sort : dynamic_smem<unsigned long long>();
  for (int i = tid; i < n_sort; i += nt) buf[i] = 0ull;
  if (tid == 0) s_slot = 0;
  __syncthreads();
  const bool all_ties = h != 0 && need == equal;
  const std::uint32_t lowest = all_ties ? h : h + 1u;  // keys >= lowest are taken in any order
  for (int t = tid; t < T; t += nt) {
    const std::uint32_t key = col[t];
    if (key >= lowest) buf[atomicAdd(&s_slot, 1)] = ec_pack(key, t);
  }
  if (h != 0 && !all_ties) {  // the first `need` ties in token order, after the k - need above h
    int seen = 0;
    for (int base = 0; base < T; base += nt) {
      const int t = base + tid;
      const bool tie = t < T && col[t] == h;
      int tile_ties = 0;
      const int rank = seen + block::exclusive_scan_sum(tie ? 1 : 0, tile_ties, scratch);
      if (tie && rank < need) buf[k - need + rank] = ec_pack(h, t);
      seen += tile_ties;
      if (seen >= need) break;  // block-uniform
    }
  }
  __syncthreads();

  // (c) Bitonic sort, descending, of n_sort (a power of two) entries.
  for (int size = 2; size <= n_sort; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int p = tid; p < n_sort / 2; p += nt) {
        const int lo = 2 * p - (p & (stride - 1));
        const int hi = lo + stride;
        const bool descending = (lo & size) == 0;
        const unsigned long long a = buf[lo], b = buf[hi];
        if ((a < b) == descending) {
          buf[lo] = b;
          buf[hi] = a;
        }
      }
      __syncthreads();
    }
  }

  // (d) Write the k slots; padding (0) becomes token -1, weight 0.
  for (int i = tid; i < k; i += nt) {
    const unsigned long long v = buf[i];
    const std::size_t o = static_cast<std::size_t>(e) * k + i;
    if (v == 0ull) {
      expert_tokens[o] = -1;
      expert_weights[o] = 0.0f;
    } else {
      const int t = static_cast<int>(0xffffffffu - static_cast<std::uint32_t>(v));
      expert_tokens[o] = t;
      expert_weights[o] = __uint_as_float(static_cast<std::uint32_t>(v >> 32) - 1u);
      atomicAdd(&token_expert_count[t], 1);
    }
  }
}

}  // namespace detail

/// Expert-choice routing of `logits` [T, E] (fp32, row-major, device) with capacity factor
/// `capacity_factor`. `num_experts` must equal E. `workspace` (16-byte aligned, device) holds
/// expert_choice_workspace_bytes(T, E, capacity_factor, tuning) bytes or more. Returns a Status
/// naming the first bad argument; launch errors come back as runtime_error. Asynchronous on
/// `stream`; outputs are ready when the stream reaches this point.
template <int E>
Status expert_choice(const float* logits, int num_tokens, int num_experts, float capacity_factor, const ExpertChoiceOutputs& out,
                     void* workspace, std::size_t workspace_bytes, rt::stream_t stream, const ExpertChoiceTuning& tuning = {}) {
  static_assert(Experts<E>::value == E, "deepshock::gate::expert_choice<E>: see deepshock::Experts<E>.");
  DEEPSHOCK_RETURN_IF_ERROR(
      detail::ec_validate(logits, num_tokens, num_experts, E, capacity_factor, out, workspace, workspace_bytes, tuning));
  if (out.nonfinite_count != nullptr) DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(out.nonfinite_count, 0, sizeof(int), stream));
  const int T = num_tokens;
  if (T == 0) return Status::success();
  const int k = expert_choice_capacity(T, E, capacity_factor);
  auto* keys = static_cast<std::uint32_t*>(workspace);
  const bool smem_sort = detail::ec_sort_in_smem(k, tuning);
  const int n_sort = detail::ec_pow2_ceil(k);
  unsigned long long* sort_global =
      smem_sort ? nullptr : reinterpret_cast<unsigned long long*>(static_cast<unsigned char*>(workspace) + detail::ec_keys_bytes(T, E));

  constexpr int kTokensPerWarp = 32 / detail::ec_lanes(E);
  const int warps_needed = (T + kTokensPerWarp - 1) / kTokensPerWarp;
  const int warps = tuning.softmax_warps < warps_needed ? tuning.softmax_warps : warps_needed;
  const int tokens_per_block = warps * kTokensPerWarp;
  const LaunchConfig softmax_cfg{dim3(static_cast<unsigned>((T + tokens_per_block - 1) / tokens_per_block)),
                                 dim3(static_cast<unsigned>(32 * warps)),
                                 static_cast<std::size_t>(E) * static_cast<std::size_t>(tokens_per_block) * sizeof(std::uint32_t), stream};
  DEEPSHOCK_RETURN_IF_ERROR(launch(detail::expert_choice_softmax_kernel<E>, softmax_cfg, logits, T, out.scores, keys,
                                   out.token_expert_count, out.nonfinite_count));

  const int by_tokens = 32 * ((T + 255) / 256);  // one warp per 256 tokens: >= 8 keys per thread and pass
  const int threads = tuning.select_threads < by_tokens ? tuning.select_threads : by_tokens;
  const LaunchConfig select_cfg{dim3(static_cast<unsigned>(E)), dim3(static_cast<unsigned>(threads)),
                                smem_sort ? static_cast<std::size_t>(n_sort) * sizeof(unsigned long long) : 0, stream};
  return launch(detail::expert_choice_select_kernel<E>, select_cfg, keys, T, k, n_sort, sort_global, out.expert_tokens, out.expert_weights,
                out.token_expert_count);
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::gate
