// deepshock/moe/gemm/launch.hpp — host side of the grouped GEMM: shared-memory sizes, the
// stream-K grid and scratch sizes, and the launchers that pick the kernel for <T, Tile, Epi>.
#pragma once

#include <cstddef>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/moe/gemm/arguments.hpp"
#include "deepshock/moe/gemm/sm80_mainloop.hpp"
#include "deepshock/moe/gemm/sm90_mainloop.hpp"
#include "deepshock/moe/gemm/tuning.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/moe/gemm/kernels.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"

namespace deepshock::moe {

/// Dynamic shared memory (bytes) of the grouped-GEMM kernel for <T, Tile, Epi, Codec>.
template <class T, class Tile, class Epi, class Codec = quant::None>
constexpr std::size_t grouped_gemm_smem_bytes() {
  constexpr int NB = GemmBatch<T, Epi, Codec>::kOperands;
  if constexpr (detail::uses_sw128_kernel_v<T, Tile>) return detail::SwizzledSmemOf<Tile, NB, Codec>::kBytes;
  else return detail::GemmSmem<T, Tile, NB, Codec>::kBytes;
}

namespace detail {
/// What every launcher checks of a batch: the grid fits, each problem's K is a whole number of
/// 16-byte vectors of both operands (its rows are then 16-byte aligned for the vector loads),
/// and the codec accepts each weight operand (group-wise codecs: whole groups, aligned scales).
template <class T, class Epi, class Codec>
Status check_batch(const GemmBatch<T, Epi, Codec>& batch) {
  if (batch.total_blocks() > 0x7fffffffLL) return Status::invalid_argument("tokens", "the grouped GEMM needs more than 2^31 - 1 blocks");
  if constexpr (quant::act_fp8_v<Codec>)
    if (const int cc = rt::compute_capability(); cc < 89)
      return Status::unsupported(std::string(Codec::kName) + ": FP8 tensor cores need sm_89 or newer, this device is sm_" +
                                 std::to_string(cc) + " (quant::Fp8Block runs the same weights on every architecture)");
  constexpr int vec_a = 16 / static_cast<int>(sizeof(typename GroupedGemmArgs<T, Codec>::A));
  constexpr int vec_b = 16 / static_cast<int>(sizeof(typename Codec::template storage<T>)) * quant::pack_v<Codec>;  // values per 16 bytes
  constexpr int vec = vec_a > vec_b ? vec_a : vec_b;
  for (int i = 0; i < batch.count; ++i) {
    const GroupedGemmArgs<T, Codec>& a = batch.args[i];
    if (a.k % vec != 0)
      return Status::invalid_argument("k", "must be a multiple of " + std::to_string(vec) +
                                               " (16-byte vectors of the activations and of the " + Codec::kName + " weights), got " +
                                               std::to_string(a.k));
    if (a.ldb != 0 && (a.ldb < a.k || a.ldb % vec_b != 0))
      return Status::invalid_argument("ldb",
                                      "must be 0 or >= k and a multiple of " + std::to_string(vec_b) + ", got " + std::to_string(a.ldb));
    if (a.b_stride % quant::pack_v<Codec> != 0)
      return Status::invalid_argument("b_stride", "must be a whole number of stored elements (a multiple of " +
                                                      std::to_string(quant::pack_v<Codec>) + ")");
    if constexpr (quant::act_int8_v<Codec> || quant::act_fp8_v<Codec>)
      if (a.a_scale == nullptr)
        return Status::invalid_argument("a_scale", std::string("must not be null (") + Codec::kName + " activations are quantized)");
    if constexpr (quant::grouped_v<Codec>) {
      DEEPSHOCK_RETURN_IF_ERROR(Codec::check(a.bq[0], a.n, a.k));
      if (GemmBatch<T, Epi, Codec>::kOperands == 2) DEEPSHOCK_RETURN_IF_ERROR(Codec::check(a.bq[1], a.n, a.k));
    }
  }
  return Status::success();
}
}  // namespace detail

/// Launches the problems of `batch` (nothing when it has no blocks). dependent_launch: as a
/// programmatic dependent launch (LaunchConfig::dependent; the kernels wait for earlier work
/// before reading anything, so the results are the same).
template <class T, class Tile, class Epi, class Codec>
Status launch_grouped_gemm(const GemmBatch<T, Epi, Codec>& batch, rt::stream_t stream, bool dependent_launch = false) {
  const long long blocks = batch.total_blocks();
  if (blocks == 0) return Status::success();
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_batch(batch));
  const LaunchConfig cfg{dim3(static_cast<unsigned>(blocks)), dim3(Tile::kThreads), grouped_gemm_smem_bytes<T, Tile, Epi, Codec>(), stream,
                         dependent_launch};
  if constexpr (detail::uses_sw128_kernel_v<T, Tile>) {
    static_assert(Codec::kIdentity || quant::act_fp8_v<Codec>,
                  "launch_grouped_gemm: the Hopper WgmmaTile kernel takes unquantized or FP8 (Fp8BlockA8) operands; use GemmTile tiles "
                  "with other codecs.");
    return launch(kernels::grouped_gemm_sw128_kernel<T, Tile, Epi, Codec>, cfg, batch);
  } else {
    return launch(kernels::grouped_gemm_kernel<T, Tile, Epi, Codec>, cfg, batch);
  }
}

/// Largest stream-K grid (blocks) a launch uses: one wave of the decode tiles on current GPUs
/// is a few hundred blocks (H200: 132 SMs x 2-4 blocks).
inline constexpr int kStreamKMaxGrid = 1024;

/// Bytes of StreamKScratch::partials for a stream-K launch of <T, Tile> of up to `blocks`
/// one-per-tile blocks (either epilogue: sized for the gated one).
template <class T, class Tile>
constexpr std::size_t streamk_partial_bytes(long long blocks) {
  const long long grid = blocks < kStreamKMaxGrid ? blocks : kStreamKMaxGrid;
  return grid <= 0 ? 0 : static_cast<std::size_t>(grid) * 2 * detail::GemmAccShape<T, Tile, 2>::kFloats * Tile::kThreads * sizeof(float);
}

#if DEEPSHOCK_SIM
namespace detail {
/// The simulator's stream-K grid (one "wave"): 6 blocks by default, so that its tests split
/// tiles across blocks at small sizes; tests may set other values.
inline int& sim_streamk_slots() {
  static int slots = 6;
  return slots;
}
}  // namespace detail
#endif

/// The stream-K grid of <T, Tile, Epi, Codec> for a launch of `blocks` one-per-tile blocks: one
/// wave (deepshock::detail::wave_blocks), at most kStreamKMaxGrid and `blocks`. The simulator uses
/// detail::sim_streamk_slots().
template <class T, class Tile, class Epi, class Codec = quant::None>
Status streamk_grid(long long blocks, int& grid) {
  grid = 0;
  long long slots = 1;
#if DEEPSHOCK_SIM
  slots = detail::sim_streamk_slots();
#endif
#if DEEPSHOCK_CUDA
  void (*kernel)(GemmBatch<T, Epi, Codec>, StreamKScratch) = kernels::grouped_gemm_streamk_kernel<T, Tile, Epi, Codec>;
  int wave = 0;
  DEEPSHOCK_RETURN_IF_ERROR(deepshock::detail::wave_blocks(reinterpret_cast<const void*>(kernel), Tile::kThreads,
                                                           grouped_gemm_smem_bytes<T, Tile, Epi, Codec>(), wave));
  slots = wave;
#endif
  if (slots < 1) slots = 1;
  if (slots > kStreamKMaxGrid) slots = kStreamKMaxGrid;
  grid = static_cast<int>(blocks < slots ? blocks : slots);
  return Status::success();
}

/// Launches the problems of `batch` with the stream-K schedule (nothing when it has no
/// blocks); `sk` holds streamk_partial_bytes<T, Tile>(batch.total_blocks()) bytes of partials
/// and batch.total_blocks() tickets, zero before the first launch. dependent_launch: as in
/// launch_grouped_gemm.
template <class T, class Tile, class Epi, class Codec>
Status launch_grouped_gemm_streamk(const GemmBatch<T, Epi, Codec>& batch, StreamKScratch sk, rt::stream_t stream,
                                   bool dependent_launch = false) {
  static_assert(!detail::uses_sw128_kernel_v<T, Tile>, "launch_grouped_gemm_streamk: stream-K runs the GemmTile kernel (decode tiles).");
  const long long blocks = batch.total_blocks();
  if (blocks == 0) return Status::success();
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_batch(batch));
  if (sk.partials == nullptr) return Status::invalid_argument("sk.partials", "must not be null");
  if (sk.tickets == nullptr) return Status::invalid_argument("sk.tickets", "must not be null");
  int grid = 0;
  DEEPSHOCK_RETURN_IF_ERROR((streamk_grid<T, Tile, Epi, Codec>(blocks, grid)));
  const LaunchConfig cfg{dim3(static_cast<unsigned>(grid)), dim3(Tile::kThreads), grouped_gemm_smem_bytes<T, Tile, Epi, Codec>(), stream,
                         dependent_launch};
  return launch(kernels::grouped_gemm_streamk_kernel<T, Tile, Epi, Codec>, cfg, batch, sk);
}
}  // namespace deepshock::moe
#endif  // DEEPSHOCK_HAS_KERNELS
