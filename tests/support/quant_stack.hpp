// One stacked weight matrix [experts, rows, cols] quantized by a codec's host quantizer, on the
// host and the device, for the GEMM and layer tests (compiled by g++ against the simulator and by
// nvcc): the stored values, the codec's per-matrix data (scales, zeros, global factors), the
// GEMM operand, and the dequantized values the codec promises (its host reference decoding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "deepshock/quant/fp4.hpp"
#include "deepshock/quant/fp8.hpp"
#include "deepshock/quant/int4.hpp"
#include "deepshock/quant/int8.hpp"
#include "device_test_helpers.hpp"

namespace ds_test {

/// T: the activation type the group codecs decode to (the reference values depend on it).
template <class Codec, class T = deepshock::bf16>
struct QuantStack {
  using W = typename Codec::template storage<float>;
  static constexpr bool kInt8 = std::is_base_of_v<deepshock::quant::Int8Channel, Codec>;
  static constexpr bool kZeros = [] {
    if constexpr (kInt8) return false;
    else return Codec::kZeros;
  }();
  static constexpr bool kGlobal = [] {
    if constexpr (kInt8) return false;
    else return deepshock::quant::epilogue_scaled_v<Codec>;
  }();
  using Scale = deepshock::quant::scale_bits_t<Codec>;
  /// The codec's per-matrix data: Int8Channel's scale pointer, the group codecs' MatrixData.
  using Data = std::conditional_t<kInt8, const float*, typename Codec::Params>;

  long long experts = 0, rows = 0, cols = 0;
  std::vector<W> q;                // [experts][rows][cols / kPack]
  std::vector<Scale> scale;        // int8: [experts * rows]; group codecs: [experts][cols / G][rows]
  std::vector<std::uint8_t> zero;  // asymmetric int4: like scale
  std::vector<float> global;       // Nvfp4: [experts]
  deepshock::rt::DeviceBuffer<W> qd;
  deepshock::rt::DeviceBuffer<Scale> sd;
  deepshock::rt::DeviceBuffer<std::uint8_t> zd;
  deepshock::rt::DeviceBuffer<float> gd;
  std::vector<double> deq;  // [experts][rows][cols]: the codec's host decoding of every row

  /// Quantizes f ([experts][rows][cols] floats); an empty f leaves the stack empty.
  void make(const std::vector<float>& f, long long experts_, long long rows_, long long cols_) {
    experts = experts_;
    rows = rows_;
    cols = cols_;
    if (f.empty()) return;
    namespace quant = deepshock::quant;
    if constexpr (kInt8) {
      q.resize(f.size());
      scale.resize(static_cast<std::size_t>(experts * rows));
      DS_REQUIRE_OK(quant::quantize_int8_channel(f.data(), experts * rows, cols, cols, q.data(), cols, scale.data()));
    } else if constexpr (std::is_base_of_v<quant::Fp8Block, Codec>) {  // Fp8Block, Fp8BlockA8
      const long long per_s = Codec::blocks(rows) * Codec::blocks(cols);
      q.assign(f.size(), 0);
      scale.assign(static_cast<std::size_t>(experts * per_s), 0.0f);
      for (long long e = 0; e < experts; ++e)
        DS_REQUIRE_OK(quant::quantize_fp8_block(f.data() + e * rows * cols, rows, cols, cols, q.data() + e * rows * cols, cols,
                                                scale.data() + e * per_s));
    } else {
      constexpr int G = Codec::kGroup;
      const auto per_q = static_cast<std::size_t>(rows * cols / 2), per_s = static_cast<std::size_t>(rows * cols / G);
      q.assign(static_cast<std::size_t>(experts) * per_q, 0);
      scale.assign(static_cast<std::size_t>(experts) * per_s, 0);
      if (kZeros) zero.assign(scale.size(), 0);
      if (kGlobal) global.assign(static_cast<std::size_t>(experts), 0.0f);
      for (long long e = 0; e < experts; ++e) {
        const float* src = f.data() + e * rows * cols;
        std::uint8_t* qe = q.data() + e * per_q;
        Scale* se = scale.data() + e * per_s;
        if constexpr (std::is_same_v<Codec, quant::Mxfp4>) {
          DS_REQUIRE_OK(quant::quantize_mxfp4(src, rows, cols, cols, qe, cols / 2, se));
        } else if constexpr (std::is_same_v<Codec, quant::Nvfp4>) {
          DS_REQUIRE_OK(quant::quantize_nvfp4(src, rows, cols, cols, qe, cols / 2, se, global.data() + e));
        } else {
          DS_REQUIRE_OK(
              (quant::quantize_int4_group<Codec>(src, rows, cols, cols, qe, cols / 2, se, kZeros ? zero.data() + e * per_s : nullptr)));
        }
      }
    }
    qd = upload_nonnull(q);
    sd = upload_nonnull(scale);
    if (kZeros) zd = upload_nonnull(zero);
    if (kGlobal) gd = upload_nonnull(global);
    decode_all();
  }

  const W* data(bool device) const { return q.empty() ? nullptr : device ? qd.data() : q.data(); }
  /// The codec's data of this matrix (for LayerWeights::codec), host or device pointers.
  auto params(bool device) const {
    if constexpr (kInt8) {
      return q.empty() ? nullptr : device ? sd.data() : scale.data();
    } else {
      typename Codec::MatrixData d{};
      if (q.empty()) return d;
      d.scale = device ? sd.data() : scale.data();
      if constexpr (kZeros) d.zero = device ? zd.data() : zero.data();
      if constexpr (kGlobal) d.global = device ? gd.data() : global.data();
      return d;
    }
  }
  /// Codec::Params with this matrix as w1.
  typename Codec::Params as_w1(bool device) const {
    typename Codec::Params p{};
    if constexpr (kInt8) p.w1_scale = params(device);
    else p.w1 = params(device);
    return p;
  }
  /// The GEMM operand of the whole stack (device pointers; output channel n = stored row n).
  typename Codec::Operand operand() const { return Codec::operand(as_w1(true), deepshock::quant::Matrix::w1, rows, 0, 1); }
  /// The dequantized weight (expert g, row, column c), as the codec's host reference decodes it.
  double value(long long g, long long row, long long c) const { return deq[static_cast<std::size_t>((g * rows + row) * cols + c)]; }

 private:
  void decode_all() {
    const typename Codec::Params p = as_w1(false);
    deq.resize(static_cast<std::size_t>(experts * rows * cols));
    for (long long g = 0; g < experts; ++g)
      for (long long r = 0; r < rows; ++r)
        Codec::template decode_row_ref<T>(p, deepshock::quant::Matrix::w1, q.data(), deepshock::quant::RowRef{g, rows, r, cols},
                                          deq.data() + static_cast<std::size_t>((g * rows + r) * cols));
  }
};

}  // namespace ds_test
