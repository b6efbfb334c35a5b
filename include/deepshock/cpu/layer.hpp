// deepshock/cpu/layer.hpp — the fast CPU executor of the MoE layer (oneDNN GEMMs, a GEMV for
// decode, OpenMP threads).
//
// moe::cpu::Executor<T, ExpertT> runs the same layer as moe::host::run_layer (same LayerDims,
// LayerWeights, LayerInputs, LayerOutputs, same checks and Status, same host routing), with the
// experts as grouped GEMMs instead of the exact executor's fixed-order dot products. The exact
// executor stays the oracle; this one is for serving on CPUs (README, "Experts on the CPU").
//
// Per run: the valid assignments are sorted by expert (moe::reference::dispatch), each expert's x rows
// gathered into one contiguous block; GEMM 1 computes [rows, H] . W1 / W3^T into fp32; the
// activation (after the optional biases) is rounded to T, giving h; GEMM 2 computes h . W2^T
// into fp32 per (token, slot); the combine sums w[t, j] * (o + b2) in slot order, plus
// g_t * (shared expert's output), in fp32 and rounds to T once. These are the numerics of the
// device layer and of the exact executor, up to the order of the GEMMs' sums.
//
// The GEMMs: an expert with more than options.gemv_max_rows rows runs on oneDNN's matmul
// (cpu/gemm.hpp); one with fewer (decode) on cpu::gemv_rows (cpu/gemv.hpp), which streams the
// weights once at memory speed. Quantized weights: W8A8 (quant::Int8ChannelA8) quantizes x and h
// per row to int8 codes (the device rule) and multiplies them with the stored int8 weights on
// the int8 instructions (oneDNN's s8 matmul, VNNI / AMX-INT8; cpu/gemv_int8.hpp's VNNI GEMV),
// exact int32 sums scaled by the row's and the column's scales as in the device epilogue; W8A16
// (quant::Int8Channel) decodes on the stored int8 rows too. The other codecs decode each item's
// weight rows to fp32 (the values the device GEMM multiplies, as the exact executor decodes
// them) and run in fp32 on x (and h) as fp32; FP8 x FP8 applies its activation rule first.
// LoRA adapters (moe/lora_rows.hpp): the shrink per gathered row beside the gather (gate, up)
// and the activation (down), the expand added to GEMM 1's sums before the activation and to
// GEMM 2's rows before the combine; each adapter costs its own rank.
//
// Threads: one OpenMP parallel region; the GEMMs are split into items (expert, matrix, tile of
// kTileN output columns), taken dynamically, each run by one thread. The gather, activation and
// combine are split by rows. Every output element is computed by one thread with one kernel
// chosen by the expert's row count alone, so a run is bitwise reproducible and the same for
// every thread count (tested). It is not batch invariant: an expert's row count selects the
// kernel, which may change the order of a row's sums.
//
// Memory: the workspace (about (T k + T) (2H + 3I) values for T = dims.max_tokens, a C tile of
// T x kTileN floats per thread, a decode tile per thread for codecs, LoRA's u rows) is allocated by the constructor; a run allocates nothing of its
// size. oneDNN primitives are created once per new GEMM shape and cached.
//
// Supported: T = float, bf16 or fp16 (bf16 GEMMs need oneDNN's bf16 kernels, i.e. AVX-512;
// elsewhere the constructor returns unsupported), every codec, every activation, gate/up layout, shared
// expert, shared gate and bias of the device layer, LoRA adapters, expert parallelism
// (RouterOptions' expert range: the executor is built for the local expert count). fp16: oneDNN
// 2.6 has no fp16 matmul without AVX512-FP16, so fp16 weights go to oneDNN as fp32 tiles
// (converted exactly, an item's rows at a time) and the decode GEMV reads them as stored.
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
#include "deepshock/cpu/gemv.hpp"
#include "deepshock/cpu/gemv_int8.hpp"
#include "deepshock/cpu/items.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/moe/host_route.hpp"
#include "deepshock/moe/host_rows.hpp"
#include "deepshock/moe/lora_rows.hpp"
#include "deepshock/moe/reference_dispatch.hpp"
#include "deepshock/moe/reference_layer.hpp"

namespace deepshock::moe::cpu {

using deepshock::cpu::GemmCache;
using deepshock::cpu::GemmElem;
using deepshock::cpu::GemmShape;
using deepshock::cpu::Isa;

/// Experts with at most this many rows run on the GEMV by default. Measured here (DeepSeek-V2-Lite,
/// bf16, mean of three runs of 32 tokens, one thread): 75 ms with 4, 103 ms with 3, 106 ms with 2
/// and 98 ms with 8 (oneDNN beats the two-pass GEMV from 5 rows on, the one-pass GEMV beats
/// oneDNN up to 4).
inline constexpr int kDefaultGemvRows = 4;

struct ExecutorOptions {
  int threads = 0;                       ///< 0: OpenMP's default (1 without OpenMP)
  int gemv_max_rows = kDefaultGemvRows;  ///< experts with at most this many rows use the GEMV; 0: none
  bool portable_gemv = false;            ///< the GEMV's portable loop even where AVX-512 exists (tests)
};

template <class T, class ExpertT>
class Executor {
  using Act = typename ExpertT::activation;
  using Codec = typename ExpertT::codec;
  using GateUp = typename ExpertT::gate_up_layout;
  using Adapter = typename ExpertT::adapter;
  static constexpr int kRank = Adapter::kRank;
  static constexpr bool kLoraUp = lora::targets<Adapter>(quant::Matrix::w1) || lora::targets<Adapter>(quant::Matrix::w3) ||
                                  lora::targets<Adapter>(quant::Matrix::shared_w1) || lora::targets<Adapter>(quant::Matrix::shared_w3);
  static constexpr bool kLoraDown = lora::targets<Adapter>(quant::Matrix::w2) || lora::targets<Adapter>(quant::Matrix::shared_w2);
  using W = typename LayerWeights<T, ExpertT>::W;
  using Items = detail::ItemRunner<T, Codec>;  // the GEMM items (cpu/items.hpp)
  using Item = typename Items::Item;
  using Gemm = typename Items::Gemm;
  static constexpr bool kGated = Act::kGated, kFused = GateUp::kFused, kCodec = Items::kCodec;
  static constexpr bool kDecode = Items::kDecode, kS8 = Items::kS8;  // fp16 and codecs: fp32 operands; W8A8: int8 codes
  static constexpr bool kActQuant = quant::act_int8_v<Codec> || quant::act_fp8_v<Codec>;
  using A = typename Items::A;  // the GEMMs' operand type (x and h as the items read them)
  static_assert(std::is_same_v<W, typename Items::W>);

 public:
  /// The layer `d` (d.max_tokens sizes the workspace) with `experts` local experts and top-k `k`.
  Executor(const LayerDims& d, int experts, int k, ExecutorOptions options = {})
      : d_(d), experts_(experts), k_(k), options_(options), items_(resolve_threads(options.threads)) {
    status_ = configure();
  }

  Status status() const { return status_; }
  int threads() const { return items_.threads(); }
  /// Bytes of the workspace the constructor allocated.
  std::size_t workspace_bytes() const { return workspace_bytes_; }
  /// oneDNN primitives created so far (one per distinct GEMM shape).
  std::size_t cached_shapes() const { return items_.cached_shapes(); }
  /// The GEMV kernels' instruction set in use.
  Isa gemv_isa() const { return items_.isa(); }

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
  static int resolve_threads(int threads) {
#if defined(_OPENMP)
    return threads > 0 ? threads : omp_get_max_threads();
#else
    (void)threads;
    return 1;
#endif
  }

  Status configure() {
    if constexpr (!std::is_same_v<T, float> && !std::is_same_v<T, bf16> && !Items::kF16)
      return Status::unsupported("deepshock::moe::cpu::Executor: T must be float, bf16 or fp16");
    DEEPSHOCK_RETURN_IF_ERROR(items_.status());
    DEEPSHOCK_RETURN_IF_ERROR((moe::detail::check_layer_dims<T, Codec>(d_)));
    if (experts_ < 1 || experts_ > kMaxDispatchExperts)
      return Status::invalid_argument("experts",
                                      "must be in [1, " + std::to_string(kMaxDispatchExperts) + "], got " + std::to_string(experts_));
    if (k_ < 1 || k_ > kMaxDispatchTopK)
      return Status::invalid_argument("k", "must be in [1, " + std::to_string(kMaxDispatchTopK) + "], got " + std::to_string(k_));
    if (options_.gemv_max_rows < 0 || options_.gemv_max_rows > deepshock::cpu::kGemvMaxRows)
      return Status::invalid_argument("options.gemv_max_rows", "must be in [0, " + std::to_string(deepshock::cpu::kGemvMaxRows) +
                                                                   "], got " + std::to_string(options_.gemv_max_rows));
    if (kS8 && std::max({d_.hidden, d_.intermediate, d_.shared_intermediate}) > deepshock::cpu::kGemvS8MaxK)
      return Status::unsupported("deepshock::moe::cpu::Executor: W8A8 keeps exact int32 sums for rows of at most " +
                                 std::to_string(deepshock::cpu::kGemvS8MaxK) + " values");
    const std::size_t T_ = static_cast<std::size_t>(d_.max_tokens), n = T_ * static_cast<std::size_t>(k_);
    const std::size_t H = static_cast<std::size_t>(d_.hidden), I = static_cast<std::size_t>(d_.intermediate),
                      Is = static_cast<std::size_t>(d_.shared_intermediate);
    const std::size_t n1 = kGated ? 2 : 1, thr = static_cast<std::size_t>(threads());
    xg_.resize(n * H);
    g1_.resize(n * n1 * I);
    h_.resize(n * I);
    o_.resize(n * H);
    xs_.resize(kDecode && Is > 0 ? T_ * H : 0);
    x_scale_.resize(kS8 ? n : 0);
    h_scale_.resize(kS8 ? n : 0);
    xs_scale_.resize(kS8 ? T_ : 0);
    hs_scale_.resize(kS8 ? T_ : 0);
    gs_.resize(T_ * n1 * Is);
    hs_.resize(T_ * Is);
    s_.resize(Is > 0 ? T_ * H : 0);
    sg_.resize(T_);
    kmax_ = static_cast<long long>(std::max({H, I, Is}));
    xrow_.resize(thr * static_cast<std::size_t>(kmax_));
    gate_f_.resize(H);
    lora_u_.resize(kRank > 0 ? 3 * (n + T_) * static_cast<std::size_t>(kRank) : 0);
    DEEPSHOCK_RETURN_IF_ERROR(items_.configure(d_.max_tokens, kmax_, options_.gemv_max_rows, options_.portable_gemv));
    counts_.resize(static_cast<std::size_t>(experts_));
    offsets_.resize(static_cast<std::size_t>(experts_) + 1);
    sorted_token_.resize(n);
    sorted_slot_.resize(n);
    slot_row_.resize(n);
    const std::size_t tiles1 = (n1 * std::max(I, Is) + kTileN - 1) / kTileN + 1, tiles2 = (H + kTileN - 1) / kTileN;
    up_.reserve((static_cast<std::size_t>(experts_) + 1) * tiles1);
    down_.reserve((static_cast<std::size_t>(experts_) + 1) * tiles2);
    workspace_bytes_ = (xg_.size() + h_.size() + hs_.size() + xs_.size()) * sizeof(A) + items_.workspace_bytes() +
                       (x_scale_.size() + h_scale_.size() + xs_scale_.size() + hs_scale_.size() + g1_.size() + o_.size() + gs_.size() +
                        s_.size() + sg_.size() + xrow_.size() + gate_f_.size() + lora_u_.size()) *
                           sizeof(float) +
                       (counts_.size() + offsets_.size() + sorted_token_.size() + sorted_slot_.size() + slot_row_.size()) * sizeof(int);
    return Status::success();
  }

  Gemm gemm1(const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, int e, int part) {
    const bool sh = e == experts_;
    const long long H = d_.hidden, R = sh ? d_.shared_intermediate : d_.intermediate, N1 = kGated ? 2 * R : R;
    const long long xs = in.x_stride == 0 ? H : in.x_stride;
    const long long r0 = sh ? 0 : offsets_[static_cast<std::size_t>(e)];
    const long long m = sh ? in.tokens : offsets_[static_cast<std::size_t>(e) + 1] - r0;
    const long long parts = kGated && !kFused ? 2 : 1, n_part = N1 / parts, ex = sh ? 0 : e;
    // Fused gate/up: one [2R, H] matrix per expert; separate: w1 (part 0) and w3 (part 1), [R, H] each.
    const long long rows = kFused ? 2 * R : R;
    const quant::Matrix mat =
        part == 0 ? (sh ? quant::Matrix::shared_w1 : quant::Matrix::w1) : (sh ? quant::Matrix::shared_w3 : quant::Matrix::w3);
    const W* base = part == 0 ? (sh ? w.shared_w1 : w.w1) : (sh ? w.shared_w3 : w.w3);
    if (!kCodec) base += ex * rows * H;
    const A* a = sh ? (kDecode ? xs_.data() : reinterpret_cast<const A*>(in.x)) : xg_.data() + r0 * H;
    const long long lda = sh && !kDecode ? xs : H;
    float* c = (sh ? gs_.data() : g1_.data()) + r0 * N1 + part * n_part;
    return {m, H, lda, N1, rows, 0, ex, mat, a, base, c, sh ? xs_scale_.data() : x_scale_.data() + r0};
  }
  Gemm gemm2(const LayerWeights<T, ExpertT>& w, int tokens, int e) {
    const bool sh = e == experts_;
    const long long H = d_.hidden, R = sh ? d_.shared_intermediate : d_.intermediate, ex = sh ? 0 : e;
    const long long r0 = sh ? 0 : offsets_[static_cast<std::size_t>(e)];
    const long long m = sh ? tokens : offsets_[static_cast<std::size_t>(e) + 1] - r0;
    const W* base = sh ? w.shared_w2 : w.w2;
    if (!kCodec) base += ex * H * R;
    return {m,
            R,
            R,
            H,
            H,
            0,
            ex,
            sh ? quant::Matrix::shared_w2 : quant::Matrix::w2,
            (sh ? hs_.data() : h_.data()) + r0 * R,
            base,
            (sh ? s_.data() : o_.data()) + r0 * H,
            sh ? hs_scale_.data() : h_scale_.data() + r0};
  }
  /// Token t's adapter on matrix m of expert e (moe/lora_rows.hpp).
  moe::detail::LoraRow<T> lora_row(const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, long long t, quant::Matrix m,
                                   long long e) const {
    return moe::detail::lora_row<Adapter>(w.adapter, in.adapter_ids, d_, t, m, e);
  }
  /// The u row of matrix slot `which` (0: w1, 1: w3, 2: w2) for routed row p (shared token t: p = n + t).
  float* lora_u(int which, long long p) {
    const std::size_t n = static_cast<std::size_t>(d_.max_tokens) * static_cast<std::size_t>(k_ + 1);
    return lora_u_.data() + (static_cast<std::size_t>(which) * n + static_cast<std::size_t>(p)) * static_cast<std::size_t>(kRank);
  }

  /// LoRA shrink of the gate and up adapters on x as given (fp32, before any quantization), for
  /// token t on expert e (routed row p) or on the shared expert (sh, row p = n + t).
  void shrink_up(const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, long long t, long long e, bool sh, const T* x, float* tmp,
                 long long p) {
    const moe::detail::LoraRow<T> l1 = lora_row(w, in, t, sh ? quant::Matrix::shared_w1 : quant::Matrix::w1, e);
    const moe::detail::LoraRow<T> l3 =
        kGated ? lora_row(w, in, t, sh ? quant::Matrix::shared_w3 : quant::Matrix::w3, e) : moe::detail::LoraRow<T>{};
    if (!l1 && !l3) return;
    const float* v = host::detail::row_as_float(x, d_.hidden, tmp);
    if (l1) moe::detail::lora_shrink(l1, v, d_.hidden, lora_u(0, p));
    if (l3) moe::detail::lora_shrink(l3, v, d_.hidden, lora_u(1, p));
  }

  Status execute(const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const int* ids, const float* wts,
                 const LayerOutputs<T>& out) {
    using host::detail::dot_fp32;
    using host::detail::row_as_float;
    const int E = experts_, k = k_, H = d_.hidden, I = d_.intermediate, Is = d_.shared_intermediate;
    const long long T_ = in.tokens;
    const std::size_t Hz = static_cast<std::size_t>(H);
    const std::size_t xs = static_cast<std::size_t>(in.x_stride == 0 ? H : in.x_stride);
    const std::size_t ys = static_cast<std::size_t>(out.y_stride == 0 ? H : out.y_stride);
    const bool sigmoid_gate = Is > 0 && w.shared_gate_kind == SharedGate::sigmoid;
    // Assignments sorted by expert with the host dispatch (moe::reference::dispatch):
    // expert e's rows are [offsets_[e], offsets_[e + 1]) in ascending assignment order, row p
    // holds token sorted_token_[p] of assignment sorted_slot_[p], and assignment a sits in row
    // slot_row_[a] (-1 where the slot has no expert).
    const DispatchOutputs sorted{counts_.data(), offsets_.data(), sorted_token_.data(), sorted_slot_.data(), slot_row_.data()};
    DEEPSHOCK_RETURN_IF_ERROR(moe::reference::dispatch(ids, static_cast<int>(T_), k, E, sorted));
    const long long rows = offsets_[static_cast<std::size_t>(E)];

    // Work items, and every oneDNN shape they use prepared before the parallel region.
    items_.trim();
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
      if (counts_[static_cast<std::size_t>(e)] > 0) add_items(e);
    for (const Item& it : up_) DEEPSHOCK_RETURN_IF_ERROR(items_.prepare(gemm1(w, in, it.e, it.part), it));
    for (const Item& it : down_) DEEPSHOCK_RETURN_IF_ERROR(items_.prepare(gemm2(w, static_cast<int>(T_), it.e), it));
    if (sigmoid_gate) {  // the shared gate's row as fp32, once
      const float* gr = row_as_float(w.shared_gate, H, gate_f_.data());
      if (gr != gate_f_.data()) std::copy(gr, gr + H, gate_f_.data());
    }

    // LoRA u rows of the shared expert's tokens follow the routed rows' capacity.
    const long long shared_row0 = static_cast<long long>(d_.max_tokens) * k;
    std::atomic<bool> failed{false};
    const long long n_up = static_cast<long long>(up_.size()), n_down = static_cast<long long>(down_.size());
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads())
#endif
    {
#if defined(_OPENMP)
      const int tid = omp_get_thread_num();
#else
      const int tid = 0;
#endif
      float* xrow = xrow_.data() + static_cast<std::size_t>(tid) * static_cast<std::size_t>(kmax_);
      // Gather each expert's x rows (as fp32 for a codec, quantized where the codec says so).
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (long long p = 0; p < rows; ++p) {
        const T* src = in.x + static_cast<std::size_t>(sorted_token_[static_cast<std::size_t>(p)]) * xs;
        A* dst = xg_.data() + static_cast<std::size_t>(p) * Hz;
        if constexpr (kDecode) load_activation(src, H, dst, kS8 ? x_scale_.data() + p : nullptr, xrow);
        else std::copy(src, src + H, dst);
        if constexpr (kLoraUp)
          shrink_up(w, in, sorted_token_[static_cast<std::size_t>(p)], ids[sorted_slot_[static_cast<std::size_t>(p)]], false, src, xrow, p);
      }
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (long long t = 0; t < (Is > 0 ? T_ : 0); ++t) {
        const T* src = in.x + static_cast<std::size_t>(t) * xs;
        if (sigmoid_gate) sg_[static_cast<std::size_t>(t)] = gate::sigmoid(dot_fp32(gate_f_.data(), row_as_float(src, H, xrow), H));
        if constexpr (kDecode)
          load_activation(src, H, xs_.data() + static_cast<std::size_t>(t) * Hz, kS8 ? xs_scale_.data() + t : nullptr, xrow);
        if constexpr (kLoraUp) shrink_up(w, in, t, 0, true, src, xrow, shared_row0 + t);
      }

      // GEMM 1.
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
      for (long long i = 0; i < n_up; ++i) {
        const Item& it = up_[static_cast<std::size_t>(i)];
        if (!items_.run(w.codec, gemm1(w, in, it.e, it.part), it, tid)) failed = true;
      }

      // Activation: h = T(act(gate + b1, up + b3)), routed rows then the shared expert's.
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (long long r = 0; r < rows + (Is > 0 ? T_ : 0); ++r) {
        const bool sh = r >= rows;
        const long long row = sh ? r - rows : r, R = sh ? Is : I, N1 = kGated ? 2 * R : R;
        const float* g = (sh ? gs_.data() : g1_.data()) + row * N1;
        A* h = (sh ? hs_.data() : h_.data()) + row * R;
        float* hf = xrow;  // W8A8: the row in fp32 before its codes
        const long long e = sh ? 0 : ids[sorted_slot_[static_cast<std::size_t>(row)]];
        const long long t = sh ? row : sorted_token_[static_cast<std::size_t>(row)], p = sh ? shared_row0 + row : row;
        const ExpertBias bias = sh ? ExpertBias{w.shared_b1, w.shared_b3, nullptr} : expert_bias(w, e, I, H);
        moe::detail::LoraRow<T> l1, l3;  // LoRA expand of the gate and up adapters, after the biases (as the GEMM epilogue adds it)
        if constexpr (kLoraUp) {
          l1 = lora_row(w, in, t, sh ? quant::Matrix::shared_w1 : quant::Matrix::w1, e);
          if (kGated) l3 = lora_row(w, in, t, sh ? quant::Matrix::shared_w3 : quant::Matrix::w3, e);
        }
        const long long g0 = kFused ? GateUp::first_gate(R) : 0, u0 = kFused ? GateUp::first_up(R) : R, step = kFused ? GateUp::kStep : 1;
        for (long long i = 0; i < R; ++i) {
          float gv = g[g0 + i * step], uv = kGated ? g[u0 + i * step] : 0.0f;
          if (bias.b1 != nullptr) gv += bias.b1[i];
          if (kGated && bias.b3 != nullptr) uv += bias.b3[i];
          if constexpr (kLoraUp) {
            if (l1) gv += moe::detail::lora_expand(l1, i, lora_u(0, p));
            if (l3) uv += moe::detail::lora_expand(l3, i, lora_u(1, p));
          }
          const T hv = moe::detail::from_float<T>(Act::apply(gv, uv));
          if constexpr (kS8 || kLoraDown) hf[i] = value_to_float(hv);
          if constexpr (kDecode && !kS8) h[i] = value_to_float(hv);
          else if constexpr (!kDecode) h[i] = hv;
        }
        if constexpr (kLoraDown) {  // LoRA shrink of the down adapter on h as rounded to T, before any quantization
          const moe::detail::LoraRow<T> l2 = lora_row(w, in, t, sh ? quant::Matrix::shared_w2 : quant::Matrix::w2, e);
          if (l2) moe::detail::lora_shrink(l2, hf, R, lora_u(2, p));
        }
        if constexpr (kS8)
          (sh ? hs_scale_ : h_scale_)[static_cast<std::size_t>(row)] = deepshock::cpu::quantize_row_s8(hf, static_cast<int>(R), h);
        else if constexpr (kActQuant) moe::detail::fake_quant_act<Codec>(h, static_cast<int>(R), h);  // GEMM 2 reads h as codes
      }

      // GEMM 2.
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
      for (long long i = 0; i < n_down; ++i) {
        const Item& it = down_[static_cast<std::size_t>(i)];
        if (!items_.run(w.codec, gemm2(w, static_cast<int>(T_), it.e), it, tid)) failed = true;
      }

      // LoRA expand of the down adapters into GEMM 2's rows (the combine adds b2 and weights them).
      if constexpr (kLoraDown) {
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (long long r = 0; r < rows + (Is > 0 ? T_ : 0); ++r) {
          const bool sh = r >= rows;
          const long long row = sh ? r - rows : r;
          const long long e = sh ? 0 : ids[sorted_slot_[static_cast<std::size_t>(row)]];
          const long long t = sh ? row : sorted_token_[static_cast<std::size_t>(row)];
          const moe::detail::LoraRow<T> l2 = lora_row(w, in, t, sh ? quant::Matrix::shared_w2 : quant::Matrix::w2, e);
          if (!l2) continue;
          float* o = (sh ? s_.data() : o_.data()) + static_cast<std::size_t>(row) * Hz;
          const float* u = lora_u(2, sh ? shared_row0 + row : row);
          for (int c = 0; c < H; ++c) o[c] += moe::detail::lora_expand(l2, c, u);
        }
      }

      // Combine: y[t] = T(sum_j (slot order) w[t, j] (o + b2) + g_t (s + shared b2)).
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (long long t = 0; t < T_; ++t) {
        T* y = out.y + static_cast<std::size_t>(t) * ys;
        // The token's slots: their GEMM 2 rows and expert biases, in slot order (k <= 32).
        const float* o[kMaxDispatchTopK];
        const float* b2[kMaxDispatchTopK];
        float wt[kMaxDispatchTopK];
        int used = 0;
        for (int j = 0; j < k; ++j) {
          const long long a = t * k + j, p = slot_row_[static_cast<std::size_t>(a)];
          if (p < 0) continue;
          o[used] = o_.data() + static_cast<std::size_t>(p) * Hz;
          b2[used] = expert_bias(w, ids[a], I, H).b2;
          wt[used++] = wts[a];
        }
        const float* sh = Is > 0 ? s_.data() + static_cast<std::size_t>(t) * Hz : nullptr;
        const float gs = sigmoid_gate ? sg_[static_cast<std::size_t>(t)] : 1.0f;
        for (int c = 0; c < H; ++c) {
          float acc = 0.0f;
          for (int j = 0; j < used; ++j) acc += wt[j] * (b2[j] != nullptr ? o[j][c] + b2[j][c] : o[j][c]);
          if (sh != nullptr) acc += gs * (w.shared_b2 != nullptr ? sh[c] + w.shared_b2[c] : sh[c]);
          y[c] = moe::detail::from_float<T>(acc);
        }
      }
    }
    if (failed) return Status::runtime_error("deepshock::moe::cpu::Executor: a oneDNN matmul failed");
    return Status::success();
  }

  /// x row -> fp32 (exactly), then the codec's activation quantization where it has one: W8A8
  /// to int8 codes and their scale (`tmp`: n floats), the others dequantized in fp32.
  static void load_activation(const T* src, int n, A* dst, float* scale, float* tmp) {
    if constexpr (kS8) {
      *scale = deepshock::cpu::quantize_row_s8(host::detail::row_as_float(src, n, tmp), n, dst);
    } else {
      (void)scale, (void)tmp;
      const float* f = host::detail::row_as_float(src, n, dst);
      if (f != dst) std::copy(f, f + n, dst);
      if constexpr (kActQuant) moe::detail::fake_quant_act<Codec>(dst, n, dst);
    }
  }

  LayerDims d_;
  int experts_, k_;
  ExecutorOptions options_;
  Items items_;  // the GEMM items' runner: oneDNN primitives, GEMVs, C and decode tiles
  Status status_;
  std::size_t workspace_bytes_ = 0;
  long long kmax_ = 0;                  // max(H, I, Is): a per-thread scratch row, a decoded weight tile row
  std::vector<A> xg_, h_, hs_, xs_;     // gathered x [rows, H]; h [rows, I]; shared h [T, Is]; shared x [T, H] (codecs)
  std::vector<float> g1_, o_, gs_, s_;  // GEMM 1 [rows, N1]; GEMM 2 [rows, H]; the shared expert's GEMM 1, GEMM 2
  std::vector<float> x_scale_, h_scale_, xs_scale_, hs_scale_;  // W8A8: the scales of xg_, h_, xs_, hs_ rows
  std::vector<float> sg_, xrow_, gate_f_;                       // shared gate [T]; per thread one row [max(H, I, Is)]; the gate's row
  std::vector<float> lora_u_;  // LoRA: u = s A v per matrix (w1, w3, w2) and row (routed rows, then T shared) [3][n + T][kRank]
  std::vector<int> counts_, offsets_, sorted_token_, sorted_slot_, slot_row_;  // the sorted assignments
  std::vector<Item> up_, down_;
};

}  // namespace deepshock::moe::cpu
