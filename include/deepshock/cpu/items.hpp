// deepshock/cpu/items.hpp — the fast CPU executor's unit of work (cpu/layer.hpp): one GEMM item,
// the output columns [n0, n0 + kTileN) of one matrix of one expert for all of that expert's
// rows, run by one thread on the kernel its row count selects — the decode GEMVs (cpu/gemv.hpp,
// cpu/gemv_int8.hpp) for a few rows, a oneDNN matmul (cpu/gemm.hpp) otherwise — with the
// weights as stored (bf16, fp32, int8) or decoded into an fp32 tile (fp16 and the other codecs).
// ItemRunner owns what the items need per thread (the oneDNN primitives and streams, a C tile, a
// decode tile), sized once by configure(); the executor describes each item (Gemm, Item) and
// calls run() from its OpenMP threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/cpu/gemm.hpp"
#include "deepshock/cpu/gemv.hpp"
#include "deepshock/cpu/gemv_int8.hpp"
#include "deepshock/moe/host_rows.hpp"
#include "deepshock/quant/codec.hpp"

namespace deepshock::moe::cpu {

/// Output columns (weight rows) per GEMM item: 128 rows of a K = 2048 bf16 matrix are 512 KiB,
/// which stay in a core's L2 while every row of the expert's block is multiplied with them.
inline constexpr int kTileN = 128;

namespace detail {

using deepshock::cpu::GemmCache;
using deepshock::cpu::GemmElem;
using deepshock::cpu::GemmShape;
using deepshock::cpu::Isa;

template <class T, class Codec>
class ItemRunner {
 public:
  static constexpr bool kCodec = !Codec::kIdentity;
  static constexpr bool kF16 = std::is_same_v<T, fp16>;
  static constexpr bool kDecode = kCodec || kF16;  ///< weights reach oneDNN as fp32 tiles
  /// W8A8 (quant::Int8ChannelA8): int8 codes times the stored int8 weights on the int8
  /// instructions (oneDNN's s8 matmul, the VNNI GEMV), exact int32 sums scaled per row and column.
  static constexpr bool kS8 = quant::act_int8_v<Codec> && std::is_base_of_v<quant::Int8Channel, Codec>;
  /// W8A16 (quant::Int8Channel): the decode GEMV reads the stored int8 weights.
  static constexpr bool kW8 = std::is_same_v<Codec, quant::Int8Channel>;
  /// The GEMMs' operand type: T for unquantized fp32 and bf16 weights, int8 codes for W8A8,
  /// fp32 for fp16 and the other codecs (decoded weights).
  using A = std::conditional_t<kS8, std::int8_t, std::conditional_t<kDecode, float, T>>;
  using W = typename Codec::template storage<T>;

  /// One GEMM item: output columns [n0, n0 + nt) of matrix part `part` of expert e (e == experts:
  /// the shared expert).
  struct Item {
    int e, part, n0, nt;
  };

  /// One item's GEMM: c[m, nt] (row stride ldc) = a[m, K] (row stride lda) . the weight rows
  /// [row0 + n0, row0 + n0 + nt) of expert `ex` of matrix `mat` (`rows` stored rows per expert;
  /// `b` points at row row0 of the expert for unquantized weights, at the whole matrix for a codec).
  struct Gemm {
    long long m, K, lda, ldc, rows, row0, ex;
    quant::Matrix mat;
    const A* a;
    const W* b;
    float* c;
    const float* a_scale;  ///< W8A8: the scale of each row of a
  };

  explicit ItemRunner(int threads) : gemm_(threads) {}

  Status status() const { return gemm_.status(); }
  int threads() const { return gemm_.threads(); }
  std::size_t cached_shapes() const { return gemm_.size(); }
  Isa isa() const { return isa_; }
  std::size_t workspace_bytes() const { return (ctile_.size() + dec_.size()) * sizeof(float); }

  /// Picks the GEMV instruction set, checks that oneDNN runs this element type here (a one-row
  /// probe shape: now rather than at run time), and sizes the per-thread tiles for items of up to
  /// `max_tokens` rows and `kmax` values per weight row.
  Status configure(int max_tokens, long long kmax, int gemv_rows, bool portable_gemv) {
    max_tokens_ = max_tokens;
    gemv_rows_ = gemv_rows;
    isa_ = portable_gemv ? Isa::portable
           : kS8         ? deepshock::cpu::best_isa_s8()
                         : deepshock::cpu::best_isa<std::conditional_t<kS8, float, A>>();
    DEEPSHOCK_RETURN_IF_ERROR(gemm_.prepare(GemmShape{1, 1, 1, 1, 1, 1, elem()}));
    const std::size_t thr = static_cast<std::size_t>(threads());
    ctile_.resize(thr * static_cast<std::size_t>(max_tokens) * kTileN);
    dec_.resize(kDecode && !kS8 ? thr * kTileN * static_cast<std::size_t>(kmax) : 0);
    kmax_ = kmax;
    return Status::success();
  }
  /// Bounds the primitive cache (GemmCache::trim): before a batch's prepare() calls.
  void trim() { gemm_.trim(); }
  /// Creates the oneDNN primitive an item needs (none for the GEMV); from one thread, before run().
  Status prepare(const Gemm& g, const Item& it) { return use_gemv(g) ? Status::success() : gemm_.prepare(shape(g, it)); }

  /// Runs one item on thread `tid`: int8 weights as stored (W8A8; W8A16 decode), other codecs'
  /// weight rows decoded to fp32 first.
  bool run(const typename Codec::Params& codec, const Gemm& g, const Item& it, int tid) {
    if (g.m == 0) return true;
    if constexpr (kS8 || kW8) {
      const long long flat = g.ex * g.rows + g.row0 + it.n0;  // the item's first stored row among all experts'
      const std::int8_t* b = g.b + flat * g.K;
      const float* sw = Codec::row_scales(codec, g.mat) + flat;
      if constexpr (kS8) {
        return run_item_s8(g, it, b, sw, tid);
      } else if (use_gemv(g)) {
        deepshock::cpu::gemv_rows_w8(isa_, static_cast<int>(g.m), it.nt, static_cast<int>(g.K), g.a, g.lda, b, g.K, sw, g.c + it.n0, g.ldc);
        return true;
      }
    }
    if constexpr (kF16 && !kCodec) {
      if (use_gemv(g)) {
        deepshock::cpu::gemv_rows_f16(isa_, static_cast<int>(g.m), it.nt, static_cast<int>(g.K), g.a, g.lda, g.b + it.n0 * g.K, g.K,
                                      g.c + it.n0, g.ldc);
        return true;
      }
    }
    if constexpr (!kS8) {
      const A* b;
      if constexpr (kDecode) {
        float* dec = dec_.data() + static_cast<std::size_t>(tid) * kTileN * static_cast<std::size_t>(kmax_);
        for (int r = 0; r < it.nt; ++r) {
          if constexpr (kCodec) {
            Codec::template decode_row<T>(codec, g.mat, g.b, quant::RowRef{g.ex, g.rows, g.row0 + it.n0 + r, g.K}, dec + r * g.K);
          } else {
            (void)codec;
            (void)host::detail::row_as_float(g.b + (it.n0 + r) * g.K, static_cast<int>(g.K), dec + r * g.K);  // fp16: into dec
          }
        }
        b = dec;
      } else {
        (void)codec;
        b = g.b + static_cast<long long>(it.n0) * g.K;
      }
      if (use_gemv(g)) {
        deepshock::cpu::gemv_rows<A>(isa_, static_cast<int>(g.m), it.nt, static_cast<int>(g.K), g.a, g.lda, b, g.K, g.c + it.n0, g.ldc);
        return true;
      }
      if (!staged(g)) return gemm_.run(shape(g, it), g.a, b, g.c + it.n0, tid);
      const float* t = ctile(tid);
      if (!gemm_.run(shape(g, it), g.a, b, ctile(tid), tid)) return false;
      for (long long r = 0; r < g.m; ++r) std::copy(t + r * it.nt, t + (r + 1) * it.nt, g.c + r * g.ldc + it.n0);
      return true;
    }
  }

 private:
  static constexpr GemmElem elem() { return kS8 ? GemmElem::s8 : std::is_same_v<A, bf16> ? GemmElem::bf16 : GemmElem::f32; }

  /// oneDNN writes C fastest in rows of exactly the item's width: measured at M = 48, N = 128,
  /// K = 2048 in bf16 (one thread, weights from memory), 307 GFLOP/s with ldc = 128 against 166
  /// with the layer's ldc = 2816. So an item's GEMM goes to its thread's C tile (up to
  /// max_tokens rows, which every expert fits unless a routing repeats an expert in a token),
  /// then is copied (W8A8: scaled) into the layer's buffer.
  bool staged(const Gemm& g) const { return g.m <= static_cast<long long>(max_tokens_); }
  float* ctile(int tid) { return ctile_.data() + static_cast<std::size_t>(tid) * static_cast<std::size_t>(max_tokens_) * kTileN; }
  GemmShape shape(const Gemm& g, const Item& it) const {
    return {static_cast<int>(g.m), it.nt, static_cast<int>(g.K), g.lda, g.K, staged(g) ? it.nt : g.ldc, elem()};
  }
  bool use_gemv(const Gemm& g) const { return g.m <= gemv_rows_; }

  /// W8A8: the exact int32 products into the thread's C tile (or the item's block of c), then
  /// scaled by the row's and the column's scales into c, in the device epilogue's order
  /// ((acc * s_row) * s_col).
  bool run_item_s8(const Gemm& g, const Item& it, const std::int8_t* b, const float* sw, int tid) {
    const bool st = staged(g);
    float* raw = st ? ctile(tid) : g.c + it.n0;
    const long long ld = st ? it.nt : g.ldc;
    auto* acc = reinterpret_cast<std::int32_t*>(raw);  // written and read through memcpy / oneDNN only
    if (use_gemv(g)) deepshock::cpu::gemv_rows_s8(isa_, static_cast<int>(g.m), it.nt, static_cast<int>(g.K), g.a, g.lda, b, g.K, acc, ld);
    else if (!gemm_.run(shape(g, it), g.a, b, acc, tid)) return false;
    for (long long r = 0; r < g.m; ++r) {
      const float* in = raw + r * ld;
      float* out = g.c + r * g.ldc + it.n0;
      const float sa = g.a_scale[r];
      for (int j = 0; j < it.nt; ++j) {
        std::int32_t v;
        std::memcpy(&v, in + j, sizeof v);
        out[j] = static_cast<float>(v) * sa * sw[j];
      }
    }
    return true;
  }

  GemmCache gemm_;
  Isa isa_ = Isa::portable;
  int max_tokens_ = 0, gemv_rows_ = 0;
  long long kmax_ = 0;
  std::vector<float> ctile_;  // per thread: an item's C tile [max_tokens, kTileN]
  std::vector<float> dec_;    // per thread: a decoded weight tile [kTileN, kmax] (fp16, codecs)
};

}  // namespace detail
}  // namespace deepshock::moe::cpu
