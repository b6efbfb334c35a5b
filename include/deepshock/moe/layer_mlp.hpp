// deepshock/moe/layer_mlp.hpp — the expert stage of moe::Layer (layer.hpp) as grouped-GEMM
// launches: the GEMM arguments of the routed experts and of the shared expert (gate/up operands
// from separate or fused tensors, biases, codec operands), their epilogues, the activation
// quantization between the GEMMs (W8A8, FP8), the LoRA shrinks before each GEMM whose epilogue
// adds the adapters' expand (lora/shrink.hpp, lora/expand.hpp), and the launches (one block per
// tile, or stream-K for the decode tiles of a stream-K tuning). Host code: it fills argument
// structs and launches.
#pragma once

#include <type_traits>

#include "deepshock/core/status.hpp"
#include "deepshock/lora/adapter.hpp"
#include "deepshock/lora/shrink.hpp"
#include "deepshock/moe/act_quant.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/moe/grouped_gemm.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/runtime.hpp"

namespace deepshock::moe::detail {

/// The grouped GEMMs of a Layer<Gate, ExpertT, T, Combine, Tuning>'s experts (see the file
/// comment): Mlp holds the two GEMMs of one expert family, `routed` and `shared` fill them for a
/// run, `mlp` launches GEMM 1 of the routed experts (and of the shared expert when it uses the
/// same tiles), the quantization of h, then GEMM 2.
template <class T, class ExpertT, class Combine, class Tuning>
struct LayerMlps {
  using Act = typename ExpertT::activation;
  using Codec = typename ExpertT::codec;
  using XQ = ActQuant<T, Codec>;
  static constexpr bool kStreamK = Tuning::kDecodeSchedule == DecodeSchedule::stream_k;
  using Adapter = typename ExpertT::adapter;
  static constexpr int kRank = Adapter::kRank;
  static constexpr bool kLoraUp =
      (Adapter::kTargets & (lora::target::w1 | lora::target::w3 | lora::target::shared_w1 | lora::target::shared_w3)) != 0;
  static constexpr bool kLoraDown = (Adapter::kTargets & (lora::target::w2 | lora::target::shared_w2)) != 0;
  using UpLora = std::conditional_t<kLoraUp, lora::Expand<T, kRank>, lora::NoExpand>;
  using DownLora = std::conditional_t<kLoraDown, lora::Expand<T, kRank>, lora::NoExpand>;
  using UpEpi = ActEpilogue<Act, T, UpLora>;
  using A = typename GroupedGemmArgs<T, Codec>::A;  ///< the GEMMs' activations: T, or one-byte codes (W8A8, FP8)
  /// The two grouped GEMMs of one expert family (the routed experts or the shared expert):
  /// GEMM 1 writes the activation through `up_epi`, GEMM 2 goes through `down_epi`; codecs with
  /// quantized activations quantize GEMM 1's output rows (h_quant) before GEMM 2 reads them.
  template <class DownEpi>
  struct Mlp {
    GroupedGemmArgs<T, Codec> up, down;
    long long m_tiles = 0;  ///< m-tile slots (max_m_tiles)
    UpEpi up_epi;
    DownEpi down_epi;
    typename XQ::Args h_quant;
    lora::ShrinkRows<T> up_shrink, down_shrink;  ///< LoRA: u = s A x before GEMM 1, s A h before GEMM 2
  };
  using SharedDownEpi = DownEpilogue<false, DownLora>;
  using SharedMlp = Mlp<SharedDownEpi>;
  using RoutedMlp = Mlp<DownEpilogue<!Combine::kDeterministic, DownLora>>;

  /// A run's adapters (LoRA): the table, the tokens' ids, the unquantized x the shrink reads, and
  /// the workspace pieces: u per matrix and the rows' (adapter, expert) for GEMM 1 and GEMM 2.
  struct LoraIn {
    const lora::AdapterRef<T>* adapters = nullptr;
    int count = 0;
    const int* ids = nullptr;
    const T* x = nullptr;
    long long ldx = 0;
    float* u[3] = {nullptr, nullptr, nullptr};  ///< gate, up, down: [rows, kRank]
    lora::RowAdapter* rows[2] = {nullptr, nullptr};
  };

  /// The shrink over x (GEMM 1: gate and up) or h (GEMM 2) of one expert family, and the matching
  /// expand of its epilogue. m0, m1: the family's matrices (m1 unused for GEMM 2 and ungated
  /// activations); out: the GEMM's N.
  static void lora_gemm(const LoraIn& l, bool down, quant::Matrix m0, quant::Matrix m1, const T* x, long long ldx, const int* x_rows,
                        const int* token, const int* offsets, int groups, int rows, int k, int out, lora::ShrinkRows<T>& s,
                        lora::Expand<T, kRank>& e) {
    s = {x, ldx, x_rows, token, offsets, groups, rows, k, {0, 0}, 0, {nullptr, nullptr}, l.rows[down ? 1 : 0]};
    e.adapters = l.adapters;
    e.rows = s.row_adapter;
    e.out = out;
    const quant::Matrix ms[2] = {m0, m1};
    const int operands = down || !Act::kGated ? 1 : 2;
    for (int i = 0; i < operands; ++i) {
      if (!lora::targets<Adapter>(ms[i])) continue;
      s.matrix[s.matrices] = static_cast<int>(ms[i]);
      s.u[s.matrices] = l.u[down ? 2 : i];
      ++s.matrices;
      e.matrix[i] = static_cast<int>(ms[i]);
      e.u[i] = l.u[down ? 2 : i];
    }
    if (s.matrices == 0) e.rows = nullptr;
  }

  /// How a run launches its grouped GEMMs: the stream, dependent launches, stream-K scratch.
  struct GemmLaunch {
    rt::stream_t stream = nullptr;
    bool dependent = false;
    StreamKScratch sk;
  };

  /// One grouped-GEMM launch with tile shape Tile: stream-K for the decode tiles of a stream-K
  /// tuning, one block per tile otherwise.
  template <class Tile, class Epi>
  static Status gemm(const GemmBatch<T, Epi, Codec>& batch, const GemmLaunch& l) {
    if constexpr (kStreamK && std::is_same_v<Tile, typename Tuning::Decode>)
      return launch_grouped_gemm_streamk<T, Tile>(batch, l.sk, l.stream, l.dependent);
    else return launch_grouped_gemm<T, Tile>(batch, l.stream, l.dependent);
  }

  /// The LoRA shrink launch before GEMM 1 (down: GEMM 2) of `a` and `b`.
  template <class EpiA>
  static Status shrink(const Mlp<EpiA>& a, const SharedMlp* b, const LoraIn& lin, bool down, const GemmLaunch& l) {
    lora::ShrinkBatch<T> batch;
    batch.adapters = lin.adapters;
    batch.adapter_count = lin.count;
    batch.adapter_ids = lin.ids;
    batch.add(down ? a.down_shrink : a.up_shrink);
    if (b != nullptr) batch.add(down ? b->down_shrink : b->up_shrink);
    return lora::launch_shrink<T, kRank>(batch, l.stream, l.dependent);
  }

  /// GEMM 1 of `a` (and `b`) in one launch, then GEMM 2 (unless up_only): one launch when the two
  /// down epilogues have the same type (ordered combine), else one each. With LoRA, a shrink
  /// launch goes before each GEMM (`lin`: the run's adapters).
  template <class Tile, class EpiA>
  static Status mlp(const Mlp<EpiA>& a, const SharedMlp* b, const GemmLaunch& l, bool up_only, const LoraIn& lin = {}) {
    if constexpr (kLoraUp) DEEPSHOCK_RETURN_IF_ERROR(shrink(a, b, lin, false, l));
    GemmBatch<T, UpEpi, Codec> up;
    up.add(a.up, a.up_epi, a.m_tiles, Tile::kBN);
    if (b != nullptr) up.add(b->up, b->up_epi, b->m_tiles, Tile::kBN);
    DEEPSHOCK_RETURN_IF_ERROR((gemm<Tile>(up, l)));
    if (up_only) return Status::success();
    if constexpr (XQ::kActive) {
      DEEPSHOCK_RETURN_IF_ERROR(XQ::run(a.h_quant, l.stream, l.dependent));
      if (b != nullptr) DEEPSHOCK_RETURN_IF_ERROR(XQ::run(b->h_quant, l.stream, l.dependent));
    }
    if constexpr (kLoraDown) DEEPSHOCK_RETURN_IF_ERROR(shrink(a, b, lin, true, l));
    GemmBatch<T, EpiA, Codec> down;
    down.add(a.down, a.down_epi, a.m_tiles, Tile::kBN);
    if constexpr (std::is_same_v<EpiA, SharedDownEpi>) {
      if (b != nullptr) down.add(b->down, b->down_epi, b->m_tiles, Tile::kBN);
      return gemm<Tile>(down, l);
    } else {
      DEEPSHOCK_RETURN_IF_ERROR((gemm<Tile>(down, l)));
      if (b == nullptr) return Status::success();
      GemmBatch<T, SharedDownEpi, Codec> second;
      second.add(b->down, b->down_epi, b->m_tiles, Tile::kBN);
      return gemm<Tile>(second, l);
    }
  }

  /// GEMM 1's operands (groups and rows left to the caller): the gate and up projections, each
  /// [N, K] per expert, from w1 and w3 or from a fused gate/up w1 [groups, 2N, K] read in place
  /// (ExpertT::gate_up_layout: every kStep-th row from the layout's first gate / up row).
  using W = typename LayerWeights<T, ExpertT>::W;
  using GateUp = typename ExpertT::gate_up_layout;
  static GroupedGemmArgs<T, Codec> gate_up_args(const A* x, long long ldx, const float* x_scale, const int* a_rows, const W* w1,
                                                const W* w3, quant::Matrix m1, quant::Matrix m3, int N, int K,
                                                const typename Codec::Params& codec, int groups) {
    GroupedGemmArgs<T, Codec> a;
    a.a = x;
    a.lda = ldx;
    a.a_scale = x_scale;
    a.a_rows = a_rows;
    a.n = N;
    a.k = K;
    a.groups = groups;
    const long long expert_rows = GateUp::kFused ? 2LL * N : N;
    a.b_stride = groups > 1 ? expert_rows * K : 0;
    if constexpr (GateUp::kFused) {
      a.b0 = w1 + GateUp::first_gate(N) * K / quant::pack_v<Codec>;  // K values: K / kPack stored elements
      a.b1 = w1 + GateUp::first_up(N) * K / quant::pack_v<Codec>;
      a.ldb = static_cast<long long>(GateUp::kStep) * K;
      a.bq[0] = Codec::operand(codec, m1, expert_rows, GateUp::first_gate(N), GateUp::kStep);
      a.bq[1] = Codec::operand(codec, m1, expert_rows, GateUp::first_up(N), GateUp::kStep);
    } else {
      a.b0 = w1;
      a.b1 = w3;
      a.bq[0] = Codec::operand(codec, m1, N, 0, 1);
      a.bq[1] = Codec::operand(codec, m3, N, 0, 1);
    }
    return a;
  }

  /// GEMM 1's activations: x as the caller gave it, or (W8A8, FP8) its codes and their scales.
  struct ActIn {
    const A* x = nullptr;
    long long ldx = 0;
    const float* scale = nullptr;
  };
  /// GEMM 1's output rows h, and (W8A8, FP8) their codes and scales, which GEMM 2 reads.
  struct HRows {
    T* h = nullptr;
    typename XQ::Code* q = nullptr;
    float* scale = nullptr;
    const A* for_gemm2() const {
      if constexpr (XQ::kActive) return q;
      else return h;
    }
  };

  /// The routed experts' MLP over the n expert-sorted assignments (tile_offsets from dispatch) of
  /// `groups` local experts.
  template <class Tile>
  static RoutedMlp routed(const LayerDims& d, int groups, const LayerWeights<T, ExpertT>& w, const ActIn& x, long long n,
                          const int* offsets, const int* tile_offsets, const int* sorted_token, const int* sorted_slot,
                          const float* weights, const HRows& h, float* out, const LoraIn& lin = {}) {
    const int H = d.hidden, I = d.intermediate;
    RoutedMlp m;
    using quant::Matrix;
    m.up = gate_up_args(x.x, x.ldx, x.scale, sorted_token, w.w1, w.w3, Matrix::w1, Matrix::w3, I, H, w.codec, groups);
    m.up.group_offsets = offsets;
    m.up.tile_offsets = tile_offsets;
    m.up.bias[0] = w.b1;
    m.up.bias[1] = w.b3;
    m.down = {h.for_gemm2(),
              I,
              nullptr,
              w.w2,
              nullptr,
              static_cast<long long>(H) * I,
              H,
              I,
              offsets,
              tile_offsets,
              groups,
              0,
              {Codec::operand(w.codec, Matrix::w2, H, 0, 1), {}}};
    m.down.a_scale = h.scale;
    m.down.bias[0] = w.b2;
    m.h_quant = {h.h, I, static_cast<int>(n), I, h.q, h.scale};
    m.m_tiles = max_m_tiles(n, Tile::kBM, groups);
    m.up_epi = {h.h, I};
    m.down_epi.out = out;
    m.down_epi.ld = H;
    m.down_epi.scale = weights;
    if constexpr (Combine::kDeterministic) {
      m.down_epi.dest_row = sorted_slot;  // one row per (token, slot); the weight is indexed by the slot too
    } else {
      m.down_epi.dest_row = sorted_token;
      m.down_epi.scale_index = sorted_slot;
    }
    const int rows = static_cast<int>(n);
    if constexpr (kLoraUp)
      lora_gemm(lin, false, Matrix::w1, Matrix::w3, lin.x, lin.ldx, sorted_token, sorted_token, offsets, groups, rows, H, I, m.up_shrink,
                m.up_epi.lora);
    if constexpr (kLoraDown)
      lora_gemm(lin, true, Matrix::w2, Matrix::w2, h.h, I, nullptr, sorted_token, offsets, groups, rows, I, H, m.down_shrink,
                m.down_epi.lora);
    return m;
  }

  /// The shared expert's MLP over all tokens (weight 1 here; the combine applies a sigmoid gate).
  template <class Tile>
  static SharedMlp shared(const LayerDims& d, const LayerWeights<T, ExpertT>& w, const ActIn& x, int tokens, const HRows& h, float* out,
                          const LoraIn& lin = {}) {
    SharedMlp m;
    using quant::Matrix;
    m.up = gate_up_args(x.x, x.ldx, x.scale, nullptr, w.shared_w1, w.shared_w3, Matrix::shared_w1, Matrix::shared_w3, d.shared_intermediate,
                        d.hidden, w.codec, 1);
    m.up.rows = tokens;
    m.up.bias[0] = w.shared_b1;
    m.up.bias[1] = w.shared_b3;
    m.down = {h.for_gemm2(),
              d.shared_intermediate,
              nullptr,
              w.shared_w2,
              nullptr,
              0,
              d.hidden,
              d.shared_intermediate,
              nullptr,
              nullptr,
              1,
              tokens,
              {Codec::operand(w.codec, Matrix::shared_w2, d.hidden, 0, 1), {}}};
    m.down.a_scale = h.scale;
    m.down.bias[0] = w.shared_b2;
    m.h_quant = {h.h, d.shared_intermediate, tokens, d.shared_intermediate, h.q, h.scale};
    m.m_tiles = max_m_tiles(tokens, Tile::kBM, 1);
    m.up_epi = {h.h, d.shared_intermediate};
    m.down_epi.out = out;
    m.down_epi.ld = d.hidden;
    const int Is = d.shared_intermediate;
    if constexpr (kLoraUp)
      lora_gemm(lin, false, Matrix::shared_w1, Matrix::shared_w3, lin.x, lin.ldx, nullptr, nullptr, nullptr, 1, tokens, d.hidden, Is,
                m.up_shrink, m.up_epi.lora);
    if constexpr (kLoraDown)
      lora_gemm(lin, true, Matrix::shared_w2, Matrix::shared_w2, h.h, Is, nullptr, nullptr, nullptr, 1, tokens, Is, d.hidden, m.down_shrink,
                m.down_epi.lora);
    return m;
  }
};

}  // namespace deepshock::moe::detail
#endif  // DEEPSHOCK_HAS_KERNELS
