// deepshock/moe/gemm/tile_loader.hpp — the grouped GEMM's one tile loader: a Rows x Chunks tile
// of 16-byte chunks copied global -> shared with cp.async, the threads of a block splitting the
// chunks evenly, into either shared-memory layout:
//   PaddedRows<RowBytes>  row r at r * RowBytes (rows padded by 16 bytes, so that ldmatrix's 8 rows
//                         hit all 32 banks): the mma.sync kernels (sm80_mainloop.hpp)
//   Swizzled128           128-byte rows with chunk ch of row r at chunk ch ^ (r % 8) (the wgmma
//                         128-byte swizzle, platform/wgmma.hpp): the Hopper kernel (sm90_mainloop.hpp)
// The caller says where chunk (r, ch) comes from, or that it is outside the operand (zero fill).
#pragma once

#include "deepshock/core/config.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/wgmma.hpp"

namespace deepshock::moe::detail {

/// Rows of RowBytes bytes, one after another.
template <int RowBytes>
struct PaddedRows {
  static_assert(RowBytes % 16 == 0, "PaddedRows: rows must keep 16-byte chunks aligned.");
  DEEPSHOCK_HOST_DEVICE static constexpr int offset(int row, int chunk) { return row * RowBytes + chunk * 16; }
};

/// 128-byte rows in the 128-byte swizzle (tile base 1024-byte aligned).
struct Swizzled128 {
  DEEPSHOCK_HOST_DEVICE static constexpr int offset(int row, int chunk) { return arch::sw128_offset(row, chunk); }
};

/// Issues this thread's cp.async copies of a Rows x Chunks tile into `dst` (Layout). `src(r, ch)`
/// returns the global address of chunk (r, ch), or nullptr outside the operand, whose chunk is
/// zero-filled without a read (cp.async still takes an address: `any` is a valid one).
template <class Layout, int Rows, int Chunks, int Threads, class Src>
DEEPSHOCK_DEVICE void load_tile_async(unsigned char* dst, int tid, const void* any, Src&& src) {
  static_assert(Rows * Chunks % Threads == 0, "load_tile_async: the tile's chunks must divide evenly among the threads.");
  DEEPSHOCK_UNROLL
  for (int i = 0; i < Rows * Chunks / Threads; ++i) {
    const int c = tid + i * Threads, r = c / Chunks, ch = c % Chunks;
    const void* p = src(r, ch);
    mem::cp_async16(dst + Layout::offset(r, ch), p != nullptr ? p : any, p != nullptr);
  }
}

}  // namespace deepshock::moe::detail
#endif  // DEEPSHOCK_HAS_KERNELS
