// deepshock/moe/host_layer.hpp — the MoE layer on the CPU: the host executor.
//
// This header compiles in every mode (plain host compiler, simulator, nvcc), needs no CUDA and
// launches no kernels. All pointers are host pointers; semantics as in moe/expert.hpp.
//
//   host::run_layer<Gate> / host::run_layer_routed — the CPU path of the layer, with the GPU
//     kernels' numerics: products and sums in fp32, the intermediate activation h rounded to T
//     before the down projection, each (token, slot) output kept in an fp32 [T*k, H] buffer,
//     then y[t] = sum_j (slot order) w[t, j] * o[t*k + j] + g_t * S(x_t) in fp32, rounded to T
//     once. Every dot product (W1 / W3 rows with x, W2 rows with h, the shared gate with x) has
//     one fixed order: element c goes into partial sum c % 16 (c ascending), then the 16 partial
//     sums are folded in halves (s = 8, 4, 2, 1: sum[l] += sum[l + s]). The independent partial
//     sums vectorise without fast-math, and the order, hence every bit, does not depend on the
//     vector width. Assignments are grouped by expert, and each weight row is converted to fp32
//     once and used for all of that expert's tokens (the shared expert: all tokens). Blocks of
//     (expert, rows) run in parallel under OpenMP when it is enabled; every output element is
//     computed by one thread, so results are bitwise the same for any thread count (and do not
//     depend on the other tokens of the batch).
//     Optional expert biases are added to the fp32 sums (b1 / b3 before the activation, b2
//     before the routing weight), as the GEMM epilogues add them. LoRA adapters (lora::LoRA
//     experts, LayerInputs::adapter_ids): u = s A v in fp32 on the unquantized x (gate, up) and
//     on h rounded to T (down), B u added to the fp32 sums after the bias; ids outside the
//     table mean no adapter, as on the device.
//     run_layer routes on the host first: gate logits in double (gate::reference::gate_logits,
//     plus the optional w_gate_bias),
//     gate::reference::route<Gate> (weights stored as float), and Switch capacity
//     (gate::reference::apply_switch_capacity, C = ceil(T / E * capacity_factor) over all T
//     tokens, padding included, as gate::Router does). The device router computes logits in
//     fp32, so near-ties may route differently there. Both validate like the device layer and
//     return the same Status. Expert parallelism as in moe::Layer: with RouterOptions'
//     [expert_begin, expert_end) the weights w1 / w3 / w2 hold those experts only.
//   host::run(layer, weights, in, out) — run_layer for a configured moe::Layer (its dims,
//     routing parameters and options), where moe::Layer exists (nvcc or simulator builds).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/reference.hpp"
#include "deepshock/gate/reference_stats.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/moe/host_route.hpp"
#include "deepshock/moe/host_rows.hpp"
#include "deepshock/moe/lora_rows.hpp"
#include "deepshock/moe/reference_dispatch.hpp"
#include "deepshock/moe/reference_layer.hpp"
#include "deepshock/quant/int8.hpp"

namespace deepshock::moe {

namespace host {

namespace detail {
using moe::detail::from_float;
using moe::detail::to_float;

/// One block of work: rows [r0, r1) of one expert's projection (e == E: the shared expert).
struct RowBlock {
  int e, r0, r1;
};

/// Rows per RowBlock: enough work per block to amortise the scheduling, enough blocks per
/// expert to balance a few hot experts over the threads.
inline constexpr int kRowsPerBlock = 32;

inline void add_row_blocks(std::vector<RowBlock>& v, int e, int rows) {
  for (int r = 0; r < rows; r += kRowsPerBlock) v.push_back({e, r, r + kRowsPerBlock < rows ? r + kRowsPerBlock : rows});
}

/// What the experts of a run computed, before the combine: o [T*k, H], the output of each
/// valid (token, slot) assignment in fp32 before its routing weight (rows of other slots are
/// not written); the shared expert's s [T, H] (empty without one) and its gate g [T] (1 unless
/// sigmoid-gated). Expert parallelism moves o rows between ranks (ep/host_ep.hpp).
struct ExpertRows {
  std::vector<float> o, s, g;
};

/// The experts, on checked arguments and a checked routing (the combine: combine_rows).
///
/// x rows are converted to fp32 once; the valid assignments are grouped by expert (counting sort,
/// ascending assignment index within an expert). Up projection: parallel over blocks of
/// (expert, intermediate rows); each W1 / W3 row is converted to fp32 once and dotted with the x
/// row of every assignment of that expert, h = T(act(g, u)) stored as fp32 [T*k, I]. Down
/// projection: parallel over blocks of (expert, output rows); each W2 row is converted once and
/// dotted with h of every assignment: o [T*k, H] in fp32. The shared expert runs the same way as
/// one more expert over all tokens. Every output element is written by one thread, in
/// dots_fp32's fixed order, so the result does not depend on the thread count or the schedule
/// (nor on which other tokens share the batch: an o row is a function of its x row, expert and
/// adapter alone).
template <class T, class ExpertT>
void expert_rows(const LayerDims& d, int k, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const int* ids, int E,
                 ExpertRows& out) {
  using Act = typename ExpertT::activation;
  using Codec = typename ExpertT::codec;
  using W = typename LayerWeights<T, ExpertT>::W;
  using quant::Matrix;
  using GateUp = typename ExpertT::gate_up_layout;
  constexpr bool gated = Act::kGated, kFused = GateUp::kFused;
  constexpr bool convert = !std::is_same_v<T, float> || !Codec::kIdentity;  // weight rows need a scratch row
  const int H = d.hidden, I = d.intermediate, Is = d.shared_intermediate;
  const long long T_ = in.tokens, n = T_ * k;
  const std::size_t Hz = static_cast<std::size_t>(H), Iz = static_cast<std::size_t>(I), Isz = static_cast<std::size_t>(Is);
  const std::size_t xs = static_cast<std::size_t>(in.x_stride == 0 ? H : in.x_stride);
  const bool sigmoid_gate = Is > 0 && w.shared_gate_kind == SharedGate::sigmoid;

  // Assignments grouped by expert: order[begin[e], begin[e + 1]).
  std::vector<long long> begin(static_cast<std::size_t>(E) + 1, 0), order;
  for (long long a = 0; a < n; ++a)
    if (ids[a] >= 0 && ids[a] < E) ++begin[static_cast<std::size_t>(ids[a]) + 1];
  for (int e = 0; e < E; ++e) begin[static_cast<std::size_t>(e) + 1] += begin[static_cast<std::size_t>(e)];
  order.resize(static_cast<std::size_t>(begin[static_cast<std::size_t>(E)]));
  {
    std::vector<long long> next(begin.begin(), begin.end() - 1);
    for (long long a = 0; a < n; ++a)
      if (ids[a] >= 0 && ids[a] < E) order[static_cast<std::size_t>(next[static_cast<std::size_t>(ids[a])]++)] = a;
  }

  // Work lists; the shared expert (most tokens per row) first, so that dynamic scheduling ends evenly.
  std::vector<RowBlock> up, down;
  if (Is > 0) {
    add_row_blocks(up, E, Is);
    add_row_blocks(down, E, H);
  }
  for (int e = 0; e < E; ++e)
    if (begin[static_cast<std::size_t>(e) + 1] > begin[static_cast<std::size_t>(e)]) {
      add_row_blocks(up, e, I);
      add_row_blocks(down, e, H);
    }
  const long long n_up = static_cast<long long>(up.size()), n_down = static_cast<long long>(down.size());
  long long max_rows = Is > 0 ? T_ : 0;  // x or h rows one block reads
  for (int e = 0; e < E; ++e) {
    const long long c = begin[static_cast<std::size_t>(e) + 1] - begin[static_cast<std::size_t>(e)];
    max_rows = c > max_rows ? c : max_rows;
  }

  std::vector<float> xf(static_cast<std::size_t>(T_) * Hz), h(static_cast<std::size_t>(n) * Iz), hs(static_cast<std::size_t>(T_) * Isz);
  std::vector<float>&o = out.o, &s = out.s, &g = out.g;
  o.assign(begin[static_cast<std::size_t>(E)] > 0 ? static_cast<std::size_t>(n) * Hz : 0, 0.0f);
  s.assign(Is > 0 ? static_cast<std::size_t>(T_) * Hz : 0, 0.0f);
  g.assign(static_cast<std::size_t>(T_), 1.0f);
  std::vector<float> gate_f(sigmoid_gate ? Hz : 0);
  const float* gate_row = sigmoid_gate ? row_as_float(w.shared_gate, H, gate_f.data()) : nullptr;
  const std::size_t scratch = Hz > Iz ? (Hz > Isz ? Hz : Isz) : (Iz > Isz ? Iz : Isz);

  // LoRA: u = s A v per (assignment or shared token, matrix) in fp32, rows [n + T, kRank] (the
  // shared expert's after the n assignments); the expand adds B[row] . u to the fp32 sum.
  using Adapter = typename ExpertT::adapter;
  constexpr int kRank = Adapter::kRank;
  std::vector<float> lora_u[3];
  if constexpr (kRank > 0)
    for (auto& u : lora_u) u.assign(static_cast<std::size_t>(n + T_) * kRank, 0.0f);
  // Token t's adapter for matrix m of expert e (-1: shared) as u = s A v and B[row] . u, by the
  // rule the fast executor shares (moe/lora_rows.hpp).
  auto lora_at = [&](long long t, int e, Matrix m) {
    return moe::detail::lora_row<Adapter>(w.adapter, in.adapter_ids, d, t, m, e < 0 ? 0 : e);
  };
  auto lora_shrink = [&](long long t, int e, Matrix m, const float* v, int len, float* u) {
    if (const auto l = lora_at(t, e, m)) moe::detail::lora_shrink(l, v, len, u);
  };
  auto lora_expand = [&](long long t, int e, Matrix m, int row, const float* u) {
    const auto l = lora_at(t, e, m);
    return l ? moe::detail::lora_expand(l, row, u) : 0.0f;
  };

#if defined(_OPENMP)
#pragma omp parallel
#endif
  {
    // Per thread: a converted weight row or two, the rows one block dots with, their results.
    std::vector<float> r1(convert ? scratch : 0), r3(convert && gated ? scratch : 0);
    std::vector<const float*> rowp(static_cast<std::size_t>(max_rows));
    std::vector<float> gv(static_cast<std::size_t>(max_rows)), uv(gated ? static_cast<std::size_t>(max_rows) : 0);

    // x -> fp32, and the shared expert's sigmoid gate.
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
    for (long long t = 0; t < T_; ++t) {
      float* xr = xf.data() + static_cast<std::size_t>(t) * Hz;
      const float* src = row_as_float(in.x + static_cast<std::size_t>(t) * xs, H, xr);
      if (src != xr)
        for (int c = 0; c < H; ++c) xr[c] = src[c];
      if (sigmoid_gate) g[static_cast<std::size_t>(t)] = gate::sigmoid(dot_fp32(gate_row, xr, H));
      // LoRA shrink of the gate and up adapters, on x as given (before any quantization).
      if constexpr (kRank > 0) {
        for (int j = 0; j <= k; ++j) {
          const bool sh = j == k;
          if (sh && Is == 0) break;
          const long long a = t * k + j;
          if (!sh && (ids[a] < 0 || ids[a] >= E)) continue;
          const std::size_t row = static_cast<std::size_t>(sh ? n + t : a) * kRank;
          lora_shrink(t, sh ? -1 : ids[a], sh ? Matrix::shared_w1 : Matrix::w1, xr, H, lora_u[0].data() + row);
          if constexpr (gated) lora_shrink(t, sh ? -1 : ids[a], sh ? Matrix::shared_w3 : Matrix::w3, xr, H, lora_u[1].data() + row);
        }
      }
      // Quantized activations (after the gate, which reads x itself): W8A8 per row, FP8 per 128.
      if constexpr (quant::act_int8_v<Codec> || quant::act_fp8_v<Codec>) moe::detail::fake_quant_act<Codec>(xr, H, xr);
    }

    // Up projection and activation: h = T(act(W1 x, W3 x)).
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (long long b = 0; b < n_up; ++b) {
      const RowBlock blk = up[static_cast<std::size_t>(b)];
      const bool sh = blk.e == E;
      const std::size_t rows = static_cast<std::size_t>(sh ? Is : I);
      // Gate row i is row first_gate + i * step of the expert's rows in w1, up row i row
      // first_up + i * step of w3 (separate) or of w1 too (a fused gate/up layout).
      const long long n_rows = static_cast<long long>(rows), e_rows = kFused ? 2 * n_rows : n_rows;
      const long long ex = sh ? 0 : blk.e, step = GateUp::kStep;
      const long long g0 = GateUp::first_gate(n_rows), u0 = GateUp::first_up(n_rows);
      const W* w1 = sh ? w.shared_w1 : w.w1;
      const W* w3 = gated ? (kFused ? w1 : (sh ? w.shared_w3 : w.w3)) : nullptr;
      const Matrix m1 = sh ? Matrix::shared_w1 : Matrix::w1, m3 = kFused ? m1 : (sh ? Matrix::shared_w3 : Matrix::w3);
      float* hb = sh ? hs.data() : h.data();
      const ExpertBias bias = sh ? ExpertBias{w.shared_b1, w.shared_b3, nullptr} : expert_bias(w, blk.e, I, H);
      const long long m = sh ? T_ : begin[static_cast<std::size_t>(blk.e) + 1] - begin[static_cast<std::size_t>(blk.e)];
      const long long* list = sh ? nullptr : order.data() + begin[static_cast<std::size_t>(blk.e)];
      for (long long q = 0; q < m; ++q) rowp[static_cast<std::size_t>(q)] = xf.data() + static_cast<std::size_t>(sh ? q : list[q] / k) * Hz;
      for (int i = blk.r0; i < blk.r1; ++i) {
        const std::size_t pf = i + 1 < blk.r1 ? Hz * sizeof(W) / quant::pack_v<Codec> : 0;  // the next rows, while this one is used
        const quant::RowRef rg{ex, e_rows, g0 + i * step, H}, ru{ex, e_rows, u0 + i * step, H};
        dot_rows(weight_row<T, Codec>(w.codec, m1, w1, rg, r1.data()), rowp.data(), m, H, gv.data(),
                 stored_row<Codec>(w1, rg.flat() + step, H), pf);
        if constexpr (gated)
          dot_rows(weight_row<T, Codec>(w.codec, m3, w3, ru, r3.data()), rowp.data(), m, H, uv.data(),
                   stored_row<Codec>(w3, ru.flat() + step, H), pf);
        // The biases are added to the fp32 sums, as the GEMM epilogue does (none: nothing added).
        const float* bg = bias.b1 != nullptr ? bias.b1 + i : nullptr;
        const float* bu = bias.b3 != nullptr ? bias.b3 + i : nullptr;
        for (long long q = 0; q < m; ++q) {
          const std::size_t a = static_cast<std::size_t>(sh ? q : list[q]);
          float gq = gv[static_cast<std::size_t>(q)], uq = gated ? uv[static_cast<std::size_t>(q)] : 0.0f;
          if (bg != nullptr) gq += *bg;
          if (gated && bu != nullptr) uq += *bu;
          if constexpr (kRank > 0) {  // LoRA expand after the bias, as the GEMM epilogue adds it
            const long long t = sh ? q : list[q] / k, row = sh ? n + q : list[q];
            gq += lora_expand(t, sh ? -1 : blk.e, sh ? Matrix::shared_w1 : Matrix::w1, i, lora_u[0].data() + row * kRank);
            if constexpr (gated)
              uq += lora_expand(t, sh ? -1 : blk.e, sh ? Matrix::shared_w3 : Matrix::w3, i, lora_u[1].data() + row * kRank);
          }
          hb[a * rows + static_cast<std::size_t>(i)] = to_float(from_float<T>(Act::apply(gq, uq)));
        }
      }
    }

    // LoRA shrink of the down adapters, on h as GEMM 1 left it (rounded to T, not quantized).
    if constexpr (kRank > 0 && (lora::targets<Adapter>(Matrix::w2) || lora::targets<Adapter>(Matrix::shared_w2))) {
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (long long r = 0; r < n + T_; ++r) {
        const bool sh = r >= n;
        if (sh && Is == 0) continue;
        if (!sh && (ids[r] < 0 || ids[r] >= E)) continue;
        const float* row = sh ? hs.data() + static_cast<std::size_t>(r - n) * Isz : h.data() + static_cast<std::size_t>(r) * Iz;
        lora_shrink(sh ? r - n : r / k, sh ? -1 : ids[r], sh ? Matrix::shared_w2 : Matrix::w2, row, sh ? Is : I,
                    lora_u[2].data() + static_cast<std::size_t>(r) * kRank);
      }
    }

    // W8A8 / FP8: GEMM 2 reads h as codes with their scales.
    if constexpr (quant::act_int8_v<Codec> || quant::act_fp8_v<Codec>) {
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (long long r = 0; r < n + T_; ++r) {
        if (r < n) {
          float* row = h.data() + static_cast<std::size_t>(r) * Iz;
          moe::detail::fake_quant_act<Codec>(row, I, row);
        } else if (Is > 0) {
          float* row = hs.data() + static_cast<std::size_t>(r - n) * Isz;
          moe::detail::fake_quant_act<Codec>(row, Is, row);
        }
      }
    }

    // Down projection: o = W2 h (s for the shared expert).
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (long long b = 0; b < n_down; ++b) {
      const RowBlock blk = down[static_cast<std::size_t>(b)];
      const bool sh = blk.e == E;
      const int cols = sh ? Is : I;
      const W* w2 = sh ? w.shared_w2 : w.w2;
      const Matrix m2 = sh ? Matrix::shared_w2 : Matrix::w2;
      const long long ex = sh ? 0 : blk.e;
      float* ob = sh ? s.data() : o.data();
      const float* b2 = sh ? w.shared_b2 : expert_bias(w, blk.e, I, H).b2;
      const long long m = sh ? T_ : begin[static_cast<std::size_t>(blk.e) + 1] - begin[static_cast<std::size_t>(blk.e)];
      const long long* list = sh ? nullptr : order.data() + begin[static_cast<std::size_t>(blk.e)];
      for (long long q = 0; q < m; ++q)
        rowp[static_cast<std::size_t>(q)] =
            (sh ? hs.data() : h.data()) + static_cast<std::size_t>(sh ? q : list[q]) * static_cast<std::size_t>(cols);
      for (int r = blk.r0; r < blk.r1; ++r) {
        const quant::RowRef rr{ex, H, r, cols};
        dot_rows(weight_row<T, Codec>(w.codec, m2, w2, rr, r1.data()), rowp.data(), m, cols, gv.data(),
                 stored_row<Codec>(w2, rr.flat() + 1, cols),
                 r + 1 < blk.r1 ? static_cast<std::size_t>(cols) * sizeof(W) / quant::pack_v<Codec> : 0);
        for (long long q = 0; q < m; ++q) {
          float v = b2 != nullptr ? gv[static_cast<std::size_t>(q)] + b2[r] : gv[static_cast<std::size_t>(q)];
          if constexpr (kRank > 0) {
            const long long t = sh ? q : list[q] / k, row = sh ? n + q : list[q];
            v += lora_expand(t, sh ? -1 : blk.e, m2, r, lora_u[2].data() + row * kRank);
          }
          ob[static_cast<std::size_t>(sh ? q : list[q]) * Hz + static_cast<std::size_t>(r)] = v;
        }
      }
    }
  }
}

/// y[t] = T(sum_j (slot order) wts[t, j] o[t*k + j] + g_t s[t]) over the valid slots (ids in
/// [0, E)), in fp32, rounded once; parallel over tokens (each y row by one thread).
template <class T>
void combine_rows(const LayerDims& d, int k, long long tokens, const int* ids, const float* wts, int E, const ExpertRows& r, T* y,
                  long long y_stride) {
  const int H = d.hidden;
  const std::size_t Hz = static_cast<std::size_t>(H), ys = static_cast<std::size_t>(y_stride == 0 ? H : y_stride);
  const bool shared = d.shared_intermediate > 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (long long t = 0; t < tokens; ++t)
    for (int c = 0; c < H; ++c) {
      float acc = 0.0f;
      for (int j = 0; j < k; ++j) {
        const long long a = t * k + j;
        if (ids[a] >= 0 && ids[a] < E) acc += wts[a] * r.o[static_cast<std::size_t>(a) * Hz + static_cast<std::size_t>(c)];
      }
      if (shared) acc += r.g[static_cast<std::size_t>(t)] * r.s[static_cast<std::size_t>(t) * Hz + static_cast<std::size_t>(c)];
      y[static_cast<std::size_t>(t) * ys + static_cast<std::size_t>(c)] = from_float<T>(acc);
    }
}

/// The experts and the combine, on checked arguments and a checked routing.
template <class T, class ExpertT>
void execute(const LayerDims& d, int k, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const int* ids, const float* wts,
             int E, const LayerOutputs<T>& out) {
  ExpertRows r;
  expert_rows(d, k, w, in, ids, E, r);
  combine_rows(d, k, in.tokens, ids, wts, E, r, out.y, out.y_stride);
}

}  // namespace detail

/// The layer with caller-supplied routing: ids [T, k] (-1 = none), weights [T, k]. Writes y and,
/// where given, expert_counts (valid assignments per expert); out.topk_ids / topk_weights /
/// dropped_count are not used (as the device layer's run_routed). An id < -1 or >= E is an error, reported
/// before anything is written.
template <class T, class ExpertT>
Status run_layer_routed(const LayerDims& d, int E, int k, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const int* topk_ids,
                        const float* topk_weights, const LayerOutputs<T>& out) {
  static_assert(moe::detail::HostExpertCheck<ExpertT>::value);
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_routed(d, E, k, w, in, topk_ids, topk_weights, out));
  if (in.tokens > 0) detail::execute(d, k, w, in, topk_ids, topk_weights, E, out);
  return Status::success();
}

/// The layer with host routing by `Gate` (gate/policies.hpp; NoisyTopK is training-only and
/// returns unsupported). The padding mask is in.token_mask (options.token_mask is not read).
/// Writes y and, where given, topk_ids / topk_weights [T, k], expert_counts [E] (valid
/// assignments per expert after drops) and dropped_count (Switch capacity drops; 0 otherwise).
template <class Gate, class T, class ExpertT>
Status run_layer(const LayerDims& d, const gate::PolicyParams& params, const gate::RouterOptions& options,
                 const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const LayerOutputs<T>& out) {
  static_assert(moe::detail::HostExpertCheck<ExpertT>::value);
  return detail::route<Gate>("deepshock::moe::host::run_layer", d, params, options, w, in, out,
                             [&](const int* ids, const float* wts, int local_experts) {
                               detail::execute(d, Gate::kTopK, w, in, ids, wts, local_experts, out);
                               return Status::success();
                             });
}

#if DEEPSHOCK_HAS_KERNELS
}  // namespace host

template <class Gate, class ExpertT, class T, class Combine, class Tuning>
class Layer;  // moe/layer.hpp

namespace host {
/// The CPU executor for a configured moe::Layer (in builds that have it: nvcc or the simulator):
/// run_layer with the layer's dims, routing parameters and options (expert range included), on
/// host pointers. Returns the layer's own status first if its configuration was rejected.
template <class Gate, class ExpertT, class T, class Combine, class Tuning>
Status run(const Layer<Gate, ExpertT, T, Combine, Tuning>& layer, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in,
           const LayerOutputs<T>& out) {
  DEEPSHOCK_RETURN_IF_ERROR(layer.status());
  return run_layer<Gate>(layer.dims(), layer.router().params(), layer.router().options(), w, in, out);
}
#endif

}  // namespace host
}  // namespace deepshock::moe

#undef DEEPSHOCK_HOST_UNROLL
#undef DEEPSHOCK_HOST_PRAGMA_
