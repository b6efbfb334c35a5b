// deepshock/gate/router_kernel.hpp — the fused token-choice router kernels.
//
// fused_router_kernel: one block of 4 warps routes 8 tokens. Phase 1 computes their logits
// x . W_g^T (and x . W_noise^T for noisy top-k) from bf16/fp16/fp32 inputs with fp32 fused
// multiply-adds in a fixed order, streaming 32-wide slices of x and of 128 expert rows through
// shared memory (128 experts per pass, one per thread). Phase 2 routes each token with one warp:
// lane l holds experts l, l+32, ...; scoring, bias, group selection, warp top-k and the weights
// follow the policy (gate/policies.hpp). logits_router_kernel runs phase 2 alone on given logits.
//
// mma_router_kernel is the tensor-core form of the fused kernel for bf16 / fp16 inputs (H a
// multiple of 8, 16-byte aligned x and weights): one block of 4 warps routes 16 or 32 tokens
// (MmaRouterShape::kTiles m16 tiles; every loaded weight fragment feeds all of them); the
// projection runs on mma.sync m16n8k16 with fp32 accumulators, each lane loading its A and B
// fragments straight from global memory as 16-byte vectors (no shared-memory staging, no
// barriers in the K loop; the next chunk's loads are in flight while the current one is
// multiplied). The kernel reads the hidden dimension in a permuted order that is the same for
// x and the weights, so one 16-byte load per row and lane serves two instructions:
//   chunk of 32 values, lane quad q = lane % 4 loads values 8q .. 8q + 7 of its rows;
//   instruction 1 takes 8q .. 8q + 3 as the logical k = 2q, 2q + 1, 2q + 8, 2q + 9,
//   instruction 2 takes 8q + 4 .. 8q + 7 the same way.
// Phase 2 (routing) is shared with the other kernels.
//
// Every value is computed in a fixed order (no float atomics): results are bitwise reproducible.
// The FMA kernels' explicit FMAs make the simulator's results equal the GPU's for the
// projection; the tensor-core kernel's accumulation order inside an instruction is the
// hardware's, so there simulator and GPU agree to rounding, not bitwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/types.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/mma.hpp"
#include "deepshock/platform/warp.hpp"

namespace deepshock::gate::detail {

inline constexpr int kRouterWarps = 4;
inline constexpr int kRouterThreads = 32 * kRouterWarps;
inline constexpr int kRouterTokens = 8;  ///< tokens per block in the fused kernel
inline constexpr int kRouterChunk = 32;  ///< hidden elements per shared-memory slice

/// Run-time arguments of the router kernels (passed by value).
struct RouterArgs {
  int tokens = 0;
  int hidden = 0;
  const float* bias = nullptr;
  const float* w_gate_bias = nullptr;  ///< [E] added to the logits before scoring (null: none)
  PolicyParams params{};
  RouterOptions options{};
  RoutingOutputs out{};
};

/// Logit columns a policy's fused kernel computes (E, or 2E with the noise projection).
template <class Policy>
constexpr int logit_columns() {
  return Policy::kNoisy ? 2 * Policy::kExperts : Policy::kExperts;
}

/// Up to this many tokens the router projects with gate_projection_kernel into its workspace
/// and routes with logits_router_kernel (two launches, many blocks on the weights); above it
/// the fused kernel runs (one launch, weights reused across the tokens of a block).
inline constexpr int kSplitMaxTokens = 64;

/// Dynamic shared memory of the fused kernel, in bytes.
template <class Policy>
constexpr std::size_t fused_smem_bytes() {
  return sizeof(float) * (std::size_t(kRouterTokens) * kRouterChunk + std::size_t(kRouterThreads) * (kRouterChunk + 1) +
                          std::size_t(kRouterTokens) * logit_columns<Policy>());
}

/// Work split of the tensor-core fused kernel over `Columns` logit columns (compile time).
/// The columns form n8 fragments, dealt to column groups of at most 8 fragments; with fewer
/// than 4 groups the 4 warps also split the hidden dimension into slices (summed in slice
/// order afterwards), with more the groups run in passes of 4.
template <int Columns>
struct MmaRouterShape {
  static constexpr int kFrags = (Columns + 7) / 8;
  static constexpr int kGroups = (kFrags + 7) / 8 <= 2 ? (kFrags + 7) / 8 : ((kFrags + 7) / 8 + 3) / 4 * 4;
  static constexpr int kFragsPerGroup = (kFrags + kGroups - 1) / kGroups;
  static constexpr int kSlices = kGroups < kRouterWarps ? kRouterWarps / kGroups : 1;
  static constexpr int kPasses = kGroups < kRouterWarps ? 1 : kGroups / kRouterWarps;
  /// Chunks a warp loads at once: 1 for 4+ fragments, more for narrow groups.
  static constexpr int kBatch = kFragsPerGroup >= 4 ? 1 : 4 / kFragsPerGroup;
  /// m16 token tiles per block (every warp multiplies each weight fragment it loads into all of
  /// them): 2 for wide groups (kBatch 1) whose block logits fit in 96 KiB of shared memory,
  /// else 1. Every block re-reads all of W_g from L2, so the L2 traffic is E / tokens-per-block
  /// times that of x: 32 tokens halve it where E is large (E >= 32); narrow groups already
  /// hold several chunks of registers and have little W_g to re-read.
  static constexpr int kTiles = kBatch == 1 && sizeof(float) * kSlices * 32 * Columns <= 96 * 1024 ? 2 : 1;
  static constexpr int kTokens = 16 * kTiles;  ///< tokens per block
  // Every warp has a (group, slice) pair and every pair a warp: 1 or 2 groups, or a multiple of 4.
  static_assert(kRouterWarps == 4 && (kGroups <= 2 || kGroups % 4 == 0) && kFragsPerGroup <= 8);
};
inline constexpr int kMmaRouterChunk = 32;  ///< hidden values per lane step (two k16 instructions)

/// Tokens per block of the tensor-core fused kernel.
template <class Policy>
constexpr int mma_router_tokens() {
  return MmaRouterShape<logit_columns<Policy>()>::kTokens;
}

/// Dynamic shared memory of the tensor-core fused kernel: the logits of its tokens, once per
/// hidden-dimension slice.
template <class Policy>
constexpr std::size_t mma_fused_smem_bytes() {
  using S = MmaRouterShape<logit_columns<Policy>()>;
  return sizeof(float) * std::size_t(S::kSlices) * S::kTokens * logit_columns<Policy>();
}

/// Whether every row of x, W_g (and W_noise) starts 16-byte aligned: H a multiple of
/// 16 / sizeof(In) values and the pointers 16-byte aligned (16-byte vector loads).
template <class In>
bool vector_loads_ok(const In* x, const In* w_gate, const In* w_noise, int hidden) {
  auto aligned = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
  return hidden % static_cast<int>(16 / sizeof(In)) == 0 && aligned(x) && aligned(w_gate) && aligned(w_noise);
}

/// Whether `run` takes the tensor-core kernel for these inputs: bf16 / fp16 with vector loads.
template <class In>
bool mma_projection_ok(const In* x, const In* w_gate, const In* w_noise, int hidden) {
  return sizeof(In) == 2 && vector_loads_ok(x, w_gate, w_noise, hidden);
}

#if DEEPSHOCK_HAS_KERNELS

template <class In>
DEEPSHOCK_DEVICE float to_float(In v) {
  if constexpr (std::is_same_v<In, float>) return v;
  else return v.to_float();
}

/// Largest two values; merging is order-independent, so every lane gets the same pair.
struct Top2 {
  float a, b;
};
DEEPSHOCK_DEVICE Top2 merge_top2(Top2 x, Top2 y) {
  const float hi = x.a > y.a ? x.a : y.a;
  const float lo = x.a > y.a ? (x.b > y.a ? x.b : y.a) : (y.b > x.a ? y.b : x.a);
  return {hi, lo};
}

/// Routes token `t` with one warp; `row` holds its E logits (and `noise_row` its E noise logits).
template <class Policy>
DEEPSHOCK_DEVICE void route_token(const float* row, const float* noise_row, int t, const RouterArgs& a) {
  constexpr int E = Policy::kExperts, K = Policy::kTopK, N = (E + 31) / 32;
  const int lane = static_cast<int>(warp::lane_id());
  int* ids = a.out.topk_ids + static_cast<long long>(t) * K;
  float* wts = a.out.topk_weights + static_cast<long long>(t) * K;
  if (a.options.token_mask != nullptr && a.options.token_mask[t] != 0) {
    if (lane < K) {
      ids[lane] = -1;
      wts[lane] = 0.0f;
    }
    return;
  }
  float s[N], key[N];
  int sel[N];
  int nonfinite = 0;
  DEEPSHOCK_UNROLL
  for (int j = 0; j < N; ++j) {
    const int e = lane + 32 * j;
    s[j] = 0.0f;
    sel[j] = -1;
    if (e >= E) continue;
    float l = row[e];
    if (a.w_gate_bias != nullptr) l += a.w_gate_bias[e];
    bool ok = math::isfinite(l);
    nonfinite += !ok;
    if constexpr (Policy::kNoisy) {
      const float ln = noise_row[e];
      const bool ok_noise = math::isfinite(ln);
      nonfinite += !ok_noise;
      ok = ok && ok_noise;
      if (ok) l = math::fma(gate_noise(a.params.seed, t, e), softplus(ln), l);
      ok = ok && math::isfinite(l);
    }
    if (ok) {
      s[j] = l;
      sel[j] = e;
    }
  }
  // Scores.
  if constexpr (Policy::kScoring == Scoring::softmax) {
    float m = -INFINITY;
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j)
      if (sel[j] >= 0) m = s[j] > m ? s[j] : m;
    m = warp::reduce_max(m);
    float sum = 0.0f;
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j) {
      s[j] = sel[j] >= 0 ? math::exp(s[j] - m) : 0.0f;
      sum += s[j];
    }
    const float total = warp::reduce_sum(sum);
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j) s[j] *= inv;
  } else if constexpr (Policy::kScoring == Scoring::sigmoid) {
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j)
      if (sel[j] >= 0) s[j] = sigmoid(s[j]);
  }
  DEEPSHOCK_UNROLL
  for (int j = 0; j < N; ++j) key[j] = Policy::kUsesBias && sel[j] >= 0 ? s[j] + a.bias[sel[j]] : s[j];
  // Group-limited selection.
  if constexpr (Policy::kGroupScore != GroupScore::none && Policy::kGroups > 1) {
    constexpr int G = Policy::kGroups, GS = Policy::kGroupSize;
    // Group of each candidate slot. With GS a multiple of 32 slot j holds experts 32j .. 32j + 31
    // on every lane, all in group 32j / GS: a compile-time constant, so the loop below keeps only
    // the slots of group g (DeepSeek-V3 256/8: one slot per group).
    int gid[N];
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j) gid[j] = sel[j] < 0 ? -1 : (GS % 32 == 0 ? 32 * j / GS : sel[j] / GS);
    float gscore[G];  // indexed by constants only (unrolled loops): stays in registers
    DEEPSHOCK_UNROLL
    for (int g = 0; g < G; ++g) {
      Top2 best{-INFINITY, -INFINITY};
      DEEPSHOCK_UNROLL
      for (int j = 0; j < N; ++j)  // a NaN key (only a NaN bias makes one) does not count
        if (gid[j] == g && key[j] == key[j]) best = merge_top2(best, Top2{key[j], -INFINITY});
      // Every lane ends with the same two largest keys of the group: the top two of a set of
      // numbers do not depend on the merge order (NaN, which would, is kept out above).
      best = warp::butterfly_reduce(best, [](Top2 x, Top2 y) { return merge_top2(x, y); });
      gscore[g] = Policy::kGroupScore == GroupScore::max ? best.a : (best.b == -INFINITY ? best.a : best.a + best.b);
    }
    unsigned long long kept = 0;
    for (int r = 0; r < Policy::kKeepGroups; ++r) {
      int pick = -1;
      float best = 0.0f;
      DEEPSHOCK_UNROLL
      for (int g = 0; g < G; ++g)
        if (!(kept >> g & 1ull) && (pick < 0 || gscore[g] > best)) {
          pick = g;
          best = gscore[g];
        }
      kept |= 1ull << pick;
    }
    DEEPSHOCK_UNROLL
    for (int j = 0; j < N; ++j)
      if (sel[j] >= 0 && !(kept >> (sel[j] / GS) & 1ull)) sel[j] = -1;
  }
  warp::Ranked<float> top[K];
  warp::topk<K>(key, sel, top);
  // Weights of the chosen experts, in rank order (every lane computes the same values).
  float w[K];
  float sum = 0.0f, mx = -INFINITY;
  DEEPSHOCK_UNROLL
  for (int r = 0; r < K; ++r) {
    const int e = top[r].index;
    float v = 0.0f;
    if constexpr (Policy::kWeightRule == WeightRule::score) {
      // The owner lane finds the score by comparing its candidates' ids with e. Selecting by the
      // slot number e >> 5 instead makes nvcc index s[] dynamically, moving it to local memory.
      float mine = 0.0f;
      DEEPSHOCK_UNROLL
      for (int j = 0; j < N; ++j)
        if (sel[j] == e) mine = s[j];
      v = warp::shfl(mine, e & 31);  // e = -1 reads lane 31; unused below
    } else {
      v = top[r].score;
    }
    w[r] = e >= 0 ? v : 0.0f;
    if (e >= 0) mx = w[r] > mx ? w[r] : mx;
  }
  if constexpr (Policy::kWeightRule == WeightRule::softmax_selected) {
    const float inv_t = 1.0f / a.params.temperature;
    DEEPSHOCK_UNROLL
    for (int r = 0; r < K; ++r) {
      w[r] = top[r].index >= 0 ? math::exp((w[r] - mx) * inv_t) : 0.0f;
      sum += w[r];
    }
    DEEPSHOCK_UNROLL
    for (int r = 0; r < K; ++r) w[r] = top[r].index >= 0 ? w[r] / sum : 0.0f;
  } else if (Policy::kRenormalizable && a.params.renormalize) {
    DEEPSHOCK_UNROLL
    for (int r = 0; r < K; ++r) sum += w[r];
    const float denom = sum + a.params.renorm_eps;
    DEEPSHOCK_UNROLL
    for (int r = 0; r < K; ++r) w[r] = top[r].index >= 0 && denom > 0.0f ? w[r] / denom : 0.0f;  // 0 if all underflowed
  }
  // Lane r writes slot r: expert-parallel masking after global normalisation.
  const int begin = a.options.expert_begin, end = a.options.expert_end;
  int my_id = -1;
  float my_w = 0.0f;
  DEEPSHOCK_UNROLL
  for (int r = 0; r < K; ++r)
    if (r == lane) {
      my_id = top[r].index;
      my_w = w[r] * a.options.routed_scaling_factor;
    }
  if (lane < K) {
    const bool local = my_id >= begin && my_id < end;
    ids[lane] = local ? my_id : -1;
    wts[lane] = local ? my_w : 0.0f;
    if (local && a.out.expert_counts != nullptr) atomicAdd(&a.out.expert_counts[my_id], 1);
  }
  if (a.out.nonfinite_count != nullptr) {
    const int total = warp::reduce_sum(nonfinite);
    if (lane == 0 && total > 0) atomicAdd(a.out.nonfinite_count, total);
  }
}

/// Gate projection and routing in one kernel. Block: kRouterThreads threads, kRouterTokens
/// tokens; dynamic shared memory fused_smem_bytes<Policy>().
template <class Policy, class In>
DEEPSHOCK_KERNEL void fused_router_kernel(const In* x, const In* w_gate, const In* w_noise, RouterArgs a) {
  constexpr int E = Policy::kExperts, EC = logit_columns<Policy>();
  constexpr int TT = kRouterTokens, CH = kRouterChunk, LD = kRouterChunk + 1;
  float* xs = dynamic_smem<float>();         // [TT][CH]
  float* ws = xs + TT * CH;                  // [kRouterThreads][LD]
  float* logits = ws + kRouterThreads * LD;  // [TT][EC]
  const int H = a.hidden;
  pdl::launch_dependents();  // the layer's dispatch may be scheduled now (it waits for this kernel's end)
  const int t0 = static_cast<int>(blockIdx.x) * TT;
  const int ntok = a.tokens - t0 < TT ? a.tokens - t0 : TT;
  const int tid = static_cast<int>(threadIdx.x);
  for (int e0 = 0; e0 < EC; e0 += kRouterThreads) {
    float acc[TT];
    DEEPSHOCK_UNROLL
    for (int t = 0; t < TT; ++t) acc[t] = 0.0f;
    for (int h0 = 0; h0 < H; h0 += CH) {
      for (int i = tid; i < TT * CH; i += kRouterThreads) {
        const int t = i / CH, h = h0 + i % CH;
        xs[i] = (t < ntok && h < H) ? to_float(x[static_cast<long long>(t0 + t) * H + h]) : 0.0f;
      }
      for (int i = tid; i < kRouterThreads * CH; i += kRouterThreads) {
        const int r = i / CH, h = h0 + i % CH, e = e0 + r;
        float v = 0.0f;
        if (e < EC && h < H)
          v = to_float(e < E ? w_gate[static_cast<long long>(e) * H + h] : w_noise[static_cast<long long>(e - E) * H + h]);
        ws[r * LD + i % CH] = v;
      }
      __syncthreads();
      for (int h = 0; h < CH; ++h) {
        const float wv = ws[tid * LD + h];
        DEEPSHOCK_UNROLL
        for (int t = 0; t < TT; ++t) acc[t] = math::fma(xs[t * CH + h], wv, acc[t]);
      }
      __syncthreads();
    }
    if (e0 + tid < EC)
      for (int t = 0; t < TT; ++t) logits[t * EC + e0 + tid] = acc[t];
  }
  __syncthreads();
  for (int t = tid / 32; t < ntok; t += kRouterWarps)
    route_token<Policy>(logits + t * EC, Policy::kNoisy ? logits + t * EC + E : nullptr, t0 + t, a);
}

/// Tensor-core fused router; see the file comment. Block: kRouterThreads threads,
/// mma_router_tokens<Policy>() tokens; dynamic shared memory mma_fused_smem_bytes<Policy>().
template <class Policy, class In>
DEEPSHOCK_KERNEL void mma_router_kernel(const In* x, const In* w_gate, const In* w_noise, RouterArgs a) {
  constexpr int E = Policy::kExperts, EC = logit_columns<Policy>(), CH = kMmaRouterChunk;
  using S = MmaRouterShape<EC>;
  constexpr int NF = S::kFragsPerGroup, KS = S::kSlices, U = S::kBatch, MI = S::kTiles, TT = S::kTokens;
  float* slab = dynamic_smem<float>();  // [KS][TT][EC]
  const int H = a.hidden;
  pdl::launch_dependents();  // the layer's dispatch may be scheduled now (it waits for this kernel's end)
  const int t0 = static_cast<int>(blockIdx.x) * TT;
  const int ntok = a.tokens - t0 < TT ? a.tokens - t0 : TT;
  const int tid = static_cast<int>(threadIdx.x), warp_id = tid / 32, lane = tid % 32;
  const int fg = lane / 4, fq = lane % 4;  // fragment row / column group and quad
  const int slice = S::kGroups < kRouterWarps ? warp_id / S::kGroups : 0;
  const int chunks = (H + CH - 1) / CH;
  // This lane's A rows: tokens t0 + 16 mi + fg and t0 + 16 mi + fg + 8 (rows past T read zeros).
  const In* xr[MI][2];
  DEEPSHOCK_UNROLL
  for (int mi = 0; mi < MI; ++mi) {
    DEEPSHOCK_UNROLL
    for (int h = 0; h < 2; ++h) {
      const int r = 16 * mi + 8 * h + fg;
      xr[mi][h] = r < ntok ? x + static_cast<long long>(t0 + r) * H : nullptr;
    }
  }

  for (int pass = 0; pass < S::kPasses; ++pass) {
    const int group = S::kGroups < kRouterWarps ? warp_id % S::kGroups : pass * kRouterWarps + warp_id;
    const int f0 = group * NF;
    // This lane's B rows: column (f0 + f) * 8 + fg of [W_g | W_noise] (past the end: zeros).
    const In* wr[NF];
    DEEPSHOCK_UNROLL
    for (int f = 0; f < NF; ++f) {
      const int n = (f0 + f) * 8 + fg;
      wr[f] = n >= EC ? nullptr : n < E ? w_gate + static_cast<long long>(n) * H : w_noise + static_cast<long long>(n - E) * H;
    }
    float acc[MI][NF][4] = {};
    // Register double buffering in batches of U chunks (U > 1 for narrow groups, to keep enough
    // bytes in flight): the loads of the next batch are issued before the current batch is
    // multiplied. Chunks past the end load zeros without touching memory.
    uint4 ca[U][MI][2], cb[U][NF];
    auto load = [&](int c, uint4(&av)[U][MI][2], uint4(&b)[U][NF]) {
      DEEPSHOCK_UNROLL
      for (int u = 0; u < U; ++u) {
        const int k = (c + u * KS) * CH + 8 * fq;
        const bool in = k < H;  // H is a multiple of 8: all eight values are in range or none
        DEEPSHOCK_UNROLL
        for (int mi = 0; mi < MI; ++mi) {
          DEEPSHOCK_UNROLL
          for (int h = 0; h < 2; ++h) av[u][mi][h] = mem::load16_or_zero(in && xr[mi][h] != nullptr ? xr[mi][h] + k : nullptr);
        }
        DEEPSHOCK_UNROLL
        for (int f = 0; f < NF; ++f) b[u][f] = mem::load16_or_zero(in && wr[f] != nullptr ? wr[f] + k : nullptr);
      }
    };
    load(slice, ca, cb);
    for (int c = slice; c < chunks; c += U * KS) {
      uint4 na[U][MI][2], nb[U][NF];
      load(c + U * KS, na, nb);
      DEEPSHOCK_UNROLL
      for (int u = 0; u < U; ++u) {
        DEEPSHOCK_UNROLL
        for (int mi = 0; mi < MI; ++mi) {
          const uint4 &a0 = ca[u][mi][0], &a1 = ca[u][mi][1];
          const std::uint32_t a_lo[4] = {a0.x, a1.x, a0.y, a1.y};
          const std::uint32_t a_hi[4] = {a0.z, a1.z, a0.w, a1.w};
          DEEPSHOCK_UNROLL
          for (int f = 0; f < NF; ++f) {
            if (f0 + f >= S::kFrags) continue;  // warp-uniform
            const std::uint32_t b_lo[2] = {cb[u][f].x, cb[u][f].y};
            const std::uint32_t b_hi[2] = {cb[u][f].z, cb[u][f].w};
            arch::mma_m16n8k16<In>(acc[mi][f], a_lo, b_lo, acc[mi][f]);
            arch::mma_m16n8k16<In>(acc[mi][f], a_hi, b_hi, acc[mi][f]);
          }
        }
      }
      DEEPSHOCK_UNROLL
      for (int u = 0; u < U; ++u) {
        DEEPSHOCK_UNROLL
        for (int mi = 0; mi < MI; ++mi) {
          ca[u][mi][0] = na[u][mi][0];
          ca[u][mi][1] = na[u][mi][1];
        }
        DEEPSHOCK_UNROLL
        for (int f = 0; f < NF; ++f) cb[u][f] = nb[u][f];
      }
    }
    // Accumulators to this slice's logits: c0, c1 at (row 16 mi + fg, columns 2fq, 2fq + 1),
    // c2, c3 at row 16 mi + fg + 8.
    float* out = slab + static_cast<long long>(slice) * TT * EC;
    DEEPSHOCK_UNROLL
    for (int mi = 0; mi < MI; ++mi) {
      DEEPSHOCK_UNROLL
      for (int f = 0; f < NF; ++f) {
        DEEPSHOCK_UNROLL
        for (int i = 0; i < 4; ++i) {
          const int row = 16 * mi + fg + 8 * (i / 2), col = (f0 + f) * 8 + 2 * fq + (i % 2);
          if (col < EC) out[row * EC + col] = acc[mi][f][i];
        }
      }
    }
  }
  __syncthreads();
  if constexpr (KS > 1) {  // slices summed in slice order (deterministic)
    for (int i = tid; i < TT * EC; i += kRouterThreads) {
      float v = slab[i];
      DEEPSHOCK_UNROLL
      for (int s = 1; s < KS; ++s) v += slab[s * TT * EC + i];
      slab[i] = v;
    }
    __syncthreads();
  }
  for (int t = warp_id; t < ntok; t += kRouterWarps)
    route_token<Policy>(slab + t * EC, Policy::kNoisy ? slab + t * EC + E : nullptr, t0 + t, a);
}

/// Decode-sized projection: logits[t, e] = x[t] . W[e] for a tile of kProjTokens tokens and
/// kProjWarps experts per block, one warp per expert; lanes stride over H (coalesced rows of
/// W), then a fixed tree sums the lanes. Many blocks share the weight read when T is small,
/// where the fused kernel would put the whole of W_g through one block. With `Vec` (see
/// vector_loads_ok) each lane reads 16 bytes of a row per step instead of one value.
inline constexpr int kProjWarps = 4;
inline constexpr int kProjTokens = 8;

/// The 16 / sizeof(In) values of a 16-byte vector, as floats.
template <class In>
DEEPSHOCK_DEVICE void unpack16(const uint4& v, float (&out)[16 / sizeof(In)]) {
  const std::uint32_t w[4] = {v.x, v.y, v.z, v.w};
  DEEPSHOCK_UNROLL
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<In, float>) {
      out[i] = __uint_as_float(w[i]);
    } else {
      out[2 * i] = In::from_bits(static_cast<std::uint16_t>(w[i] & 0xFFFFu)).to_float();
      out[2 * i + 1] = In::from_bits(static_cast<std::uint16_t>(w[i] >> 16)).to_float();
    }
  }
}

template <class In, bool Vec>
DEEPSHOCK_KERNEL void gate_projection_kernel(const In* x, const In* w_gate, const In* w_noise, int T, int H, int E, int columns,
                                             float* logits) {
  pdl::launch_dependents();  // logits_router_kernel may be scheduled now (it waits for this kernel's end)
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int e = static_cast<int>(blockIdx.x) * kProjWarps + static_cast<int>(threadIdx.x) / 32;
  const int t0 = static_cast<int>(blockIdx.y) * kProjTokens;
  if (e >= columns) return;  // whole warps
  const In* wrow = e < E ? w_gate + static_cast<long long>(e) * H : w_noise + static_cast<long long>(e - E) * H;
  float acc[kProjTokens];
  DEEPSHOCK_UNROLL
  for (int t = 0; t < kProjTokens; ++t) acc[t] = 0.0f;
  if constexpr (Vec) {
    constexpr int V = static_cast<int>(16 / sizeof(In));
    for (int h = lane * V; h < H; h += 32 * V) {
      float wv[V];
      unpack16<In>(mem::load16_or_zero(wrow + h), wv);
      DEEPSHOCK_UNROLL
      for (int t = 0; t < kProjTokens; ++t) {
        if (t0 + t >= T) continue;
        float xv[V];
        unpack16<In>(mem::load16_or_zero(x + static_cast<long long>(t0 + t) * H + h), xv);
        DEEPSHOCK_UNROLL
        for (int j = 0; j < V; ++j) acc[t] = math::fma(xv[j], wv[j], acc[t]);
      }
    }
  } else {
    for (int h = lane; h < H; h += 32) {
      const float wv = to_float(wrow[h]);
      DEEPSHOCK_UNROLL
      for (int t = 0; t < kProjTokens; ++t)
        if (t0 + t < T) acc[t] = math::fma(to_float(x[static_cast<long long>(t0 + t) * H + h]), wv, acc[t]);
    }
  }
  DEEPSHOCK_UNROLL
  for (int t = 0; t < kProjTokens; ++t) {
    const float sum = warp::reduce_sum(acc[t]);
    if (lane == 0 && t0 + t < T) logits[static_cast<long long>(t0 + t) * columns + e] = sum;
  }
}

/// Routing on precomputed logits [T, E] (and noise logits [T, E] for noisy top-k): one warp
/// per token, kRouterThreads threads per block.
/// `row_stride` is the distance between rows (E, or 2E for the projection's [logits | noise]).
/// Safe to launch with LaunchConfig::dependent (it waits for earlier work first).
template <class Policy>
DEEPSHOCK_KERNEL void logits_router_kernel(const float* logits, const float* noise_logits, long long row_stride, RouterArgs a) {
  pdl::wait();
  pdl::launch_dependents();
  const int t = static_cast<int>(blockIdx.x) * kRouterWarps + static_cast<int>(threadIdx.x) / 32;
  if (t >= a.tokens) return;  // whole warps
  const long long off = static_cast<long long>(t) * row_stride;
  route_token<Policy>(logits + off, noise_logits != nullptr ? noise_logits + off : nullptr, t, a);
}

#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::gate::detail
