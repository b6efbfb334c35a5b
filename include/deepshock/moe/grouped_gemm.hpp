// deepshock/moe/grouped_gemm.hpp — grouped GEMMs of the MoE layer (the public header; the parts
// live in moe/gemm/: tuning, epilogue, arguments, scheduler, sm80_mainloop, sm90_mainloop,
// kernels, launch). For every group (expert) g,
//   C_g[p, n] = sum_k A[row(p), k] * B_g[n, k]        p in [offsets[g], offsets[g + 1])
// with A's rows gathered through an index list inside the tile loads (no permuted copy of the
// activations), B_g the group's weights in nn.Linear layout [N, K] (K contiguous), fp32
// accumulation, and an epilogue policy that consumes the accumulators:
//   * ActEpilogue<Act>: gated GEMM 1 — two weight matrices (W1, W3) share the A tile and the
//     epilogue writes T(act(gate, up)) to the intermediate [rows, N] (non-gated: act(gate));
//   * DownEpilogue: GEMM 2 — writes scale[dest] * acc as fp32 to out[dest(p), n] (ordered
//     combine), or atomically adds it (AtomicCombine).
//
// Mapping without a host round trip: the 1-D grid covers an upper bound of the m-tiles
// (ceil(rows / BM) + groups) times the n-tiles, of one or two problems (GemmBatch); the
// device-side m-tile offsets of the groups come from dispatch (DispatchOutputs::tile_offsets
// with tile_rows = BM, moe/dispatch.hpp) and each block finds its group by binary search; blocks past the last tile return at once. Empty groups cost
// nothing. The grid depends only on the planned row count, so the launches can be captured in a
// CUDA graph.
//
// Math: bf16 / fp16 through arch::mma_m16n8k16 (sm_80+, fp32 accumulators, a warp tile of
// MI x NI instructions); fp32 inputs use plain FMAs (exact testing, not a fast path).
// Tiles: GemmTile<BM, BN, KBytes, WarpsM, WarpsN, Stages>, the K step is KBytes / sizeof(T)
// elements (128 bytes: 64 bf16 or 32 fp32 per row and stage). Shared-memory rows are padded by
// 16 bytes so that the fragment loads (ldmatrix: 8 rows of 16 bytes at a stride of 36 words per
// phase) hit 32 different banks.
// Requirements (checked by the layer): K a multiple of 16 / sizeof(T), 16-byte aligned A, B and
// row strides (vector loads).
// Loads: a `Stages`-deep cp.async pipeline (sm_80+) in dynamic shared memory — while one k-tile
// is multiplied, Stages - 1 more are in flight, with one barrier per k-tile. Decode is limited by
// the bytes in flight: at T = 1 a DeepSeek-V2-Lite layer has only ~130-190 blocks per GEMM (about
// one per SM), so the decode tile keeps 3 weight k-tiles (3 x 18 KiB gated) in flight per block,
// where a register-staged loop kept one.
// Hopper: WgmmaTile<BM, BN, Stages> selects grouped_gemm_sw128_kernel for 16-bit inputs — the
// same block mapping, gather and epilogue, with the tiles in 128-byte swizzled shared memory and
// the math on wgmma (platform/wgmma.hpp; sm_90a builds) with one group in flight, or mma.sync
// from the same layout where wgmma is not compiled. HopperGemmTuning uses it for prefill. The
// A rows are gathered per token, so TMA (whole boxes) does not fit the A loads.
// Decode schedule: one block per tile, or stream-K (DecodeSchedule::stream_k, StreamKGemmTuning):
// one wave of blocks shares the actual k-tiles of all active tiles equally, with a fixed-order
// reduction of split tiles (grouped_gemm_streamk_kernel), so that no block idles in a last
// partial wave (e.g. DeepSeek-V3 at T = 1: 288 tiles of 1.8 MB each on 264 block slots).
#pragma once

#include "deepshock/moe/activation.hpp"
#include "deepshock/moe/gemm/arguments.hpp"
#include "deepshock/moe/gemm/epilogue.hpp"
#include "deepshock/moe/gemm/launch.hpp"
#include "deepshock/moe/gemm/tuning.hpp"
