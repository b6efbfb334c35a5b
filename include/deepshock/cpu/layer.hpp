// deepshock/cpu/layer.hpp — the fast CPU executor of the MoE layer (oneDNN GEMMs, OpenMP threads).
//
// moe::cpu::Executor<T, ExpertT> runs the same layer as moe::host::run_layer (same LayerDims,
// LayerWeights, LayerInputs, LayerOutputs, same checks and Status, same host routing), with the
// experts as grouped GEMMs on oneDNN (cpu/gemm.hpp) instead of the exact executor's fixed-order
// dot products. The exact executor stays the oracle; this one is for serving on CPUs (experts
// on the CPU and attention on the GPU, say; see README "Hybrid use").
//
// Per run: the valid assignments are sorted by expert (counting sort), each expert's x rows
// gathered into one contiguous block; GEMM 1 computes [rows, H] . W1 / W3^T into fp32; the
// activation (after the optional biases) is rounded to T, giving h; GEMM 2 computes h . W2^T
// into fp32 per (token, slot); the combine sums w[t, j] * (o + b2) in slot order, plus
// g_t * (shared expert's output), in fp32 and rounds to T once. These are the numerics of the
// device layer and of the exact executor, up to the order of the GEMMs' sums.
//
// Threads: one OpenMP parallel region; the GEMMs are split into items (expert, matrix, tile of
// kTileN output columns), taken dynamically, each run by one thread as a single-threaded
// oneDNN matmul. The gather, activation and combine are split by rows. Every output element is
// computed by one thread with one primitive, so a run is bitwise reproducible and the same for
// every thread count (tested). It is not batch invariant: an expert's row count selects
// oneDNN's kernel, which may change the order of a row's sums.
//
// Memory: the workspace (about (T k + T) (2H + 3I) floats for T = dims.max_tokens) is allocated
// by the constructor; a run allocates nothing of its size. oneDNN primitives are created once
// per new GEMM shape (rows per expert differ between batches) and cached.
//
// Supported: T = float or bf16 (bf16 GEMMs need oneDNN's bf16 kernels, i.e. AVX-512; elsewhere
// the constructor returns unsupported), quant::None weights, no LoRA, every activation, gate/up
// layout, shared expert, shared gate and bias of the device layer, expert parallelism
// (RouterOptions' expert range: the executor is built for the local expert count).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/cpu/gemm.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/moe/host_route.hpp"
#include "deepshock/moe/host_rows.hpp"

namespace deepshock::moe::cpu {

using deepshock::cpu::GemmCache;
using deepshock::cpu::GemmElem;
using deepshock::cpu::GemmShape;

/// Output columns (weight rows) per GEMM item: 128 rows of a K = 2048 bf16 matrix are 512 KiB,
/// which stay in a core's L2 while every row of the expert's block is multiplied with them.
inline constexpr int kTileN = 128;

template <class T, class ExpertT>
class Executor {
  using Act = typename ExpertT::activation;
  using Codec = typename ExpertT::codec;
  using GateUp = typename ExpertT::gate_up_layout;
  using W = typename LayerWeights<T, ExpertT>::W;
  static constexpr bool kGated = Act::kGated, kFused = GateUp::kFused;

 public:
  /// The layer `d` (d.max_tokens sizes the workspace) with `experts` local experts and top-k `k`,
  /// on `threads` threads (0: OpenMP's default; 1 without OpenMP).
  Executor(const LayerDims& d, int experts, int k, int threads = 0) : d_(d), experts_(experts), k_(k), gemm_(resolve_threads(threads)) {
    status_ = configure();
  }

  Status status() const { return status_; }
  int threads() const { return gemm_.threads(); }
  /// Bytes of the workspace the constructor allocated.
  std::size_t workspace_bytes() const { return workspace_bytes_; }
  /// oneDNN primitives created so far (one per distinct GEMM shape).
  std::size_t cached_shapes() const { return gemm_.size(); }

  /// The layer with caller-supplied routing (as moe::host::run_layer_routed): ids [T, k] in
  /// {-1} or [0, experts), weights [T, k].
  Status run_routed(const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const int* topk_ids, const float* topk_weights,
                    const LayerOutputs<T>& out) {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    DEEPSHOCK_RETURN_IF_ERROR(host::detail::check_routed(d_, experts_, k_, w, in, topk_ids, topk_weights, out));
    return in.tokens > 0 ? execute(w, in, topk_ids, topk_weights, out) : Status::success();
  }

  /// The layer with host routing by `Gate` (as moe::host::run_layer). Gate::kTopK must be the
  /// executor's k and the options' expert range its expert count.
  template <class Gate>
  Status run(const gate::PolicyParams& params, const gate::RouterOptions& options, const LayerWeights<T, ExpertT>& w,
             const LayerInputs<T>& in, const LayerOutputs<T>& out) {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    if (Gate::kTopK != k_)
      return Status::invalid_argument("Gate",
                                      "top-k " + std::to_string(Gate::kTopK) + " differs from the executor's k = " + std::to_string(k_));
    const int end = options.expert_end < 0 ? Gate::kExperts : options.expert_end;
    if (end - options.expert_begin != experts_)
      return Status::invalid_argument("options.expert_begin/expert_end", "the range holds " + std::to_string(end - options.expert_begin) +
                                                                             " experts; the executor was built for " +
                                                                             std::to_string(experts_));
    return host::detail::route<Gate>("deepshock::moe::cpu::Executor::run", d_, params, options, w, in, out,
                                     [&](const int* ids, const float* wts, int) { return execute(w, in, ids, wts, out); });
  }

 private:
  /// One GEMM item: output columns [n0, n0 + nt) of matrix part `part` of expert e (e == experts:
  /// the shared expert).
  struct Item {
    int e, part, n0, nt;
  };

  static int resolve_threads(int threads) {
#if defined(_OPENMP)
    return threads > 0 ? threads : omp_get_max_threads();
#else
    (void)threads;
    return 1;
#endif
  }

  static constexpr GemmElem elem() { return std::is_same_v<T, bf16> ? GemmElem::bf16 : GemmElem::f32; }

  Status configure() {
    if constexpr (!std::is_same_v<T, float> && !std::is_same_v<T, bf16>)
      return Status::unsupported("deepshock::moe::cpu::Executor: T must be float or bf16 (oneDNN's fp16 GEMMs need AVX512-FP16)");
    if constexpr (!Codec::kIdentity)
      return Status::unsupported(std::string("deepshock::moe::cpu::Executor: quantized weights (") + Codec::kName +
                                 ") are not supported yet; use moe::host::run_layer");
    if constexpr (ExpertT::adapter::kRank > 0)
      return Status::unsupported("deepshock::moe::cpu::Executor: LoRA adapters are not supported yet; use moe::host::run_layer");
    DEEPSHOCK_RETURN_IF_ERROR(gemm_.status());
    DEEPSHOCK_RETURN_IF_ERROR((moe::detail::check_layer_dims<T, Codec>(d_)));
    if (experts_ < 1 || experts_ > kMaxDispatchExperts)
      return Status::invalid_argument("experts",
                                      "must be in [1, " + std::to_string(kMaxDispatchExperts) + "], got " + std::to_string(experts_));
    if (k_ < 1 || k_ > kMaxDispatchTopK)
      return Status::invalid_argument("k", "must be in [1, " + std::to_string(kMaxDispatchTopK) + "], got " + std::to_string(k_));
    // Can this CPU run T's GEMM at all? A one-row probe shape says so now rather than at run time.
    DEEPSHOCK_RETURN_IF_ERROR(gemm_.prepare(GemmShape{1, 1, 1, 1, 1, 1, elem()}));
    const std::size_t T_ = static_cast<std::size_t>(d_.max_tokens), n = T_ * static_cast<std::size_t>(k_);
    const std::size_t H = static_cast<std::size_t>(d_.hidden), I = static_cast<std::size_t>(d_.intermediate),
                      Is = static_cast<std::size_t>(d_.shared_intermediate);
    const std::size_t n1 = kGated ? 2 : 1;
    xg_.resize(n * H);
    g1_.resize(n * n1 * I);
    h_.resize(n * I);
    o_.resize(n * H);
    gs_.resize(T_ * n1 * Is);
    hs_.resize(T_ * Is);
    s_.resize(Is > 0 ? T_ * H : 0);
    sg_.resize(T_);
    xrow_.resize(static_cast<std::size_t>(threads()) * H);
    gate_f_.resize(H);
    order_.resize(n);
    pos_.resize(n);
    row_expert_.resize(n);
    begin_.resize(static_cast<std::size_t>(experts_) + 2);
    const std::size_t tiles1 = (n1 * (I > Is ? I : Is) + kTileN - 1) / kTileN + 1, tiles2 = (H + kTileN - 1) / kTileN;
    up_.reserve((static_cast<std::size_t>(experts_) + 1) * tiles1);
    down_.reserve((static_cast<std::size_t>(experts_) + 1) * tiles2);
    workspace_bytes_ = (xg_.size() + h_.size() + hs_.size()) * sizeof(T) +
                       (g1_.size() + o_.size() + gs_.size() + s_.size() + sg_.size()) * 4 + (xrow_.size() + gate_f_.size()) * 4 +
                       (order_.size() + pos_.size() + row_expert_.size() + begin_.size()) * sizeof(long long);
    return Status::success();
  }

  // GEMM 1 of expert e (e == experts_: shared): rows, A and its row stride, the weight base of
  // `part`, the output block and its row stride.
  struct Gemm1 {
    long long m, lda, ldc, n_part;
    const T* a;
    const W* b;
    float* c;
  };
  Gemm1 gemm1(const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, int e, int part) {
    const bool sh = e == experts_;
    const long long H = d_.hidden, R = sh ? d_.shared_intermediate : d_.intermediate, N1 = kGated ? 2 * R : R;
    const long long xs = in.x_stride == 0 ? H : in.x_stride;
    const long long r0 = sh ? 0 : begin_[static_cast<std::size_t>(e)];
    const long long m = sh ? in.tokens : begin_[static_cast<std::size_t>(e) + 1] - r0;
    const long long parts = kGated && !kFused ? 2 : 1, n_part = N1 / parts;
    // Fused gate/up: one [2R, H] matrix per expert; separate: w1 (part 0) and w3 (part 1), [R, H] each.
    const W* base = part == 0 ? (sh ? w.shared_w1 : w.w1 + static_cast<long long>(e) * (kFused ? 2 * R : R) * H)
                              : (sh ? w.shared_w3 : w.w3 + static_cast<long long>(e) * R * H);
    float* c = (sh ? gs_.data() : g1_.data()) + r0 * N1 + part * n_part;
    return {m, sh ? xs : H, N1, n_part, sh ? in.x : xg_.data() + r0 * H, base, c};
  }
  struct Gemm2 {
    long long m, k;
    const T* a;
    const W* b;
    float* c;
  };
  Gemm2 gemm2(const LayerWeights<T, ExpertT>& w, int e) {
    const bool sh = e == experts_;
    const long long H = d_.hidden, R = sh ? d_.shared_intermediate : d_.intermediate;
    const long long r0 = sh ? 0 : begin_[static_cast<std::size_t>(e)];
    const long long m = sh ? static_cast<long long>(hs_rows_) : begin_[static_cast<std::size_t>(e) + 1] - r0;
    return {m, R, (sh ? hs_.data() : h_.data()) + r0 * R, sh ? w.shared_w2 : w.w2 + static_cast<long long>(e) * H * R,
            (sh ? s_.data() : o_.data()) + r0 * H};
  }

  Status execute(const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const int* ids, const float* wts,
                 const LayerOutputs<T>& out) {
    using host::detail::dot_fp32;
    using host::detail::row_as_float;
    const int E = experts_, k = k_, H = d_.hidden, I = d_.intermediate, Is = d_.shared_intermediate;
    const long long T_ = in.tokens, n = T_ * k;
    const std::size_t Hz = static_cast<std::size_t>(H);
    const std::size_t xs = static_cast<std::size_t>(in.x_stride == 0 ? H : in.x_stride);
    const std::size_t ys = static_cast<std::size_t>(out.y_stride == 0 ? H : out.y_stride);
    const bool sigmoid_gate = Is > 0 && w.shared_gate_kind == SharedGate::sigmoid;
    hs_rows_ = static_cast<int>(T_);

    // Assignments sorted by expert: order_[begin_[e], begin_[e + 1]) (ascending assignment
    // index within an expert), pos_[a] its row, -1 where the slot has no expert.
    std::fill(begin_.begin(), begin_.end(), 0);
    for (long long a = 0; a < n; ++a)
      if (ids[a] >= 0) ++begin_[static_cast<std::size_t>(ids[a]) + 1];
    for (int e = 0; e < E; ++e) begin_[static_cast<std::size_t>(e) + 1] += begin_[static_cast<std::size_t>(e)];
    for (int e = E; e > 0; --e) begin_[static_cast<std::size_t>(e)] = begin_[static_cast<std::size_t>(e) - 1];
    begin_[0] = 0;
    for (long long a = 0; a < n; ++a) {
      if (ids[a] < 0) {
        pos_[static_cast<std::size_t>(a)] = -1;
        continue;
      }
      const long long p = begin_[static_cast<std::size_t>(ids[a]) + 1]++;
      order_[static_cast<std::size_t>(p)] = a;
      pos_[static_cast<std::size_t>(a)] = p;
      row_expert_[static_cast<std::size_t>(p)] = ids[a];
    }
    const long long rows = begin_[static_cast<std::size_t>(E)];

    // Work items, and every GEMM shape they use prepared before the parallel region.
    gemm_.trim();
    up_.clear();
    down_.clear();
    auto add_items = [&](int e) {
      const bool sh = e == E;
      const int R = sh ? Is : I, parts = kGated && !kFused ? 2 : 1, n_part = (kGated ? 2 * R : R) / parts;
      for (int part = 0; part < parts; ++part)
        for (int c = 0; c < n_part; c += kTileN) up_.push_back({e, part, c, n_part - c < kTileN ? n_part - c : kTileN});
      for (int c = 0; c < H; c += kTileN) down_.push_back({e, 0, c, H - c < kTileN ? H - c : kTileN});
    };
    if (Is > 0) add_items(E);  // the shared expert first: the largest items start first
    for (int e = 0; e < E; ++e)
      if (begin_[static_cast<std::size_t>(e) + 1] > begin_[static_cast<std::size_t>(e)]) add_items(e);
    for (const Item& it : up_) {
      const Gemm1 g = gemm1(w, in, it.e, it.part);
      DEEPSHOCK_RETURN_IF_ERROR(gemm_.prepare(shape1(g, it)));
    }
    for (const Item& it : down_) DEEPSHOCK_RETURN_IF_ERROR(gemm_.prepare(shape2(gemm2(w, it.e), it)));

    std::atomic<bool> failed{false};
    const long long n_up = static_cast<long long>(up_.size()), n_down = static_cast<long long>(down_.size());
    if (sigmoid_gate) {  // the shared gate's row as fp32, once
      const float* gr = row_as_float(w.shared_gate, H, gate_f_.data());
      if (gr != gate_f_.data()) std::copy(gr, gr + H, gate_f_.data());
    }
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads())
#endif
    {
#if defined(_OPENMP)
      const int tid = omp_get_thread_num();
#else
      const int tid = 0;
#endif
      float* xrow = xrow_.data() + static_cast<std::size_t>(tid) * Hz;
      // Gather each expert's x rows; the shared expert's sigmoid gate.
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (long long p = 0; p < rows; ++p) {
        const T* src = in.x + static_cast<std::size_t>(order_[static_cast<std::size_t>(p)] / k) * xs;
        std::copy(src, src + H, xg_.data() + static_cast<std::size_t>(p) * Hz);
      }
      if (sigmoid_gate) {
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (long long t = 0; t < T_; ++t) {
          const float* xr = row_as_float(in.x + static_cast<std::size_t>(t) * xs, H, xrow);
          sg_[static_cast<std::size_t>(t)] = gate::sigmoid(dot_fp32(gate_f_.data(), xr, H));
        }
      }

      // GEMM 1.
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
      for (long long i = 0; i < n_up; ++i) {
        const Item& it = up_[static_cast<std::size_t>(i)];
        const Gemm1 g = gemm1(w, in, it.e, it.part);
        if (g.m > 0 && !gemm_.run(shape1(g, it), g.a, g.b + static_cast<long long>(it.n0) * H, g.c + it.n0, tid)) failed = true;
      }

      // Activation: h = T(act(gate + b1, up + b3)), routed rows then the shared expert's.
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (long long r = 0; r < rows + (Is > 0 ? T_ : 0); ++r) {
        const bool sh = r >= rows;
        const long long row = sh ? r - rows : r, R = sh ? Is : I, N1 = kGated ? 2 * R : R;
        const float* g = (sh ? gs_.data() : g1_.data()) + row * N1;
        T* h = (sh ? hs_.data() : h_.data()) + row * R;
        const ExpertBias bias =
            sh ? ExpertBias{w.shared_b1, w.shared_b3, nullptr} : expert_bias(w, row_expert_[static_cast<std::size_t>(row)], I, H);
        const long long g0 = kFused ? GateUp::first_gate(R) : 0, u0 = kFused ? GateUp::first_up(R) : R, step = kFused ? GateUp::kStep : 1;
        for (long long i = 0; i < R; ++i) {
          float gv = g[g0 + i * step], uv = kGated ? g[u0 + i * step] : 0.0f;
          if (bias.b1 != nullptr) gv += bias.b1[i];
          if (kGated && bias.b3 != nullptr) uv += bias.b3[i];
          h[i] = moe::detail::from_float<T>(Act::apply(gv, uv));
        }
      }

      // GEMM 2.
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
      for (long long i = 0; i < n_down; ++i) {
        const Item& it = down_[static_cast<std::size_t>(i)];
        const Gemm2 g = gemm2(w, it.e);
        if (g.m > 0 && !gemm_.run(shape2(g, it), g.a, g.b + static_cast<long long>(it.n0) * g.k, g.c + it.n0, tid)) failed = true;
      }

      // Combine: y[t] = T(sum_j (slot order) w[t, j] (o + b2) + g_t (s + shared b2)).
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (long long t = 0; t < T_; ++t) {
        T* y = out.y + static_cast<std::size_t>(t) * ys;
        for (int c = 0; c < H; ++c) {
          float acc = 0.0f;
          for (int j = 0; j < k; ++j) {
            const long long a = t * k + j, p = pos_[static_cast<std::size_t>(a)];
            if (p < 0) continue;
            const float* b2 = expert_bias(w, ids[a], I, H).b2;
            const float v = o_[static_cast<std::size_t>(p) * Hz + static_cast<std::size_t>(c)];
            acc += wts[a] * (b2 != nullptr ? v + b2[c] : v);
          }
          if (Is > 0) {
            const float v = s_[static_cast<std::size_t>(t) * Hz + static_cast<std::size_t>(c)];
            acc += (sigmoid_gate ? sg_[static_cast<std::size_t>(t)] : 1.0f) * (w.shared_b2 != nullptr ? v + w.shared_b2[c] : v);
          }
          y[c] = moe::detail::from_float<T>(acc);
        }
      }
    }
    if (failed) return Status::runtime_error("deepshock::moe::cpu::Executor: a oneDNN matmul failed");
    return Status::success();
  }

  GemmShape shape1(const Gemm1& g, const Item& it) const {
    return {static_cast<int>(g.m), it.nt, d_.hidden, g.lda, d_.hidden, g.ldc, elem()};
  }
  GemmShape shape2(const Gemm2& g, const Item& it) const {
    return {static_cast<int>(g.m), it.nt, static_cast<int>(g.k), g.k, g.k, d_.hidden, elem()};
  }

  LayerDims d_;
  int experts_, k_;
  GemmCache gemm_;
  Status status_;
  std::size_t workspace_bytes_ = 0;
  int hs_rows_ = 0;
  std::vector<T> xg_, h_, hs_;               // gathered x [rows, H]; h [rows, I]; shared h [T, Is]
  std::vector<float> g1_, o_, gs_, s_, sg_;  // GEMM 1 [rows, N1]; GEMM 2 [rows, H]; shared ones; shared gate [T]
  std::vector<float> xrow_, gate_f_;         // per thread: one row as fp32; the shared gate's row
  std::vector<long long> order_, pos_, row_expert_, begin_;
  std::vector<Item> up_, down_;
};

}  // namespace deepshock::moe::cpu
