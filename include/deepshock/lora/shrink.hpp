// deepshock/lora/shrink.hpp — the shrink half of a fused LoRA update: u_p = s_a A_{e,a} x_p for
// every GEMM row p, as a grouped kernel launched before the GEMM whose epilogue adds B u
// (lora/expand.hpp). Row p's adapter a comes from its token's id (LayerInputs::adapter_ids,
// -1 = none), its expert e from the group it lies in; the shrink also writes (a, e) per row for
// the epilogue. x is the unquantized activation (the layer's input for W1 / W3, GEMM 1's output h
// for W2), as PEFT applies an adapter to a quantized base layer's input.
//
// One block per row, 4 warps: warp w computes ranks w, w + 4, ... of the row's adapter (its own
// rank r_a, so a rank-8 row costs rank 8 whatever the capacity), each lane a strided part of the
// K-long dot product in 16-byte vectors, then a fixed-order warp reduction: a row's u depends on
// its own x and adapter only, so LoRA keeps the layer's batch invariance. A rows come through L2,
// shared by every row of the same (expert, adapter).
#pragma once

#include "deepshock/core/config.hpp"
#include "deepshock/lora/adapter.hpp"
#include "deepshock/lora/expand.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/core/status.hpp"
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/warp.hpp"
#endif

namespace deepshock::lora {

/// The rows of one GEMM that one shrink computes u for (device pointers).
template <class T>
struct ShrinkRows {
  const T* x = nullptr;  ///< activations; row p's at x + x_row(p) * ldx
  long long ldx = 0;
  const int* x_rows = nullptr;         ///< [rows] x row of GEMM row p; null: p
  const int* token = nullptr;          ///< [rows] token of GEMM row p (indexes adapter_ids); null: p
  const int* group_offsets = nullptr;  ///< [groups + 1] rows of each expert; null: one expert (the shared one)
  int groups = 1;
  int rows = 0;                       ///< upper bound of the rows (grid); grouped: group_offsets[groups] rows are live
  int k = 0;                          ///< K, the length of x's rows (a multiple of 16 / sizeof(T))
  int matrix[2] = {0, 0};             ///< quant::Matrix of the one or two matrices reading x
  int matrices = 0;                   ///< 0: nothing to do
  float* u[2] = {nullptr, nullptr};   ///< [rows, Rank] per matrix
  RowAdapter* row_adapter = nullptr;  ///< [rows] out: row p's (adapter, expert)
};

/// One shrink launch: up to two row sets (the routed experts' and the shared expert's).
template <class T>
struct ShrinkBatch {
  ShrinkRows<T> set[2];
  int count = 0;
  const AdapterRef<T>* adapters = nullptr;
  int adapter_count = 0;
  const int* adapter_ids = nullptr;  ///< [tokens]; ids outside [0, adapter_count) mean none
  void add(const ShrinkRows<T>& s) {
    if (s.rows > 0 && s.matrices > 0 && count < 2) set[count++] = s;
  }
  long long blocks() const { return static_cast<long long>(count > 0 ? set[0].rows : 0) + (count > 1 ? set[1].rows : 0); }
};

#if DEEPSHOCK_HAS_KERNELS
namespace kernels {

inline constexpr int kShrinkThreads = 128;

template <class T, int Rank>
DEEPSHOCK_KERNEL void shrink_kernel(ShrinkBatch<T> batch) {
  pdl::wait();  // x (h: GEMM 1's output), the group offsets and the tokens come from earlier kernels
  pdl::launch_dependents();
  const long long b = blockIdx.x;
  const bool second = b >= batch.set[0].rows;
  const ShrinkRows<T>& s = second ? batch.set[1] : batch.set[0];
  const int p = static_cast<int>(second ? b - batch.set[0].rows : b);
  int expert = 0;
  if (s.group_offsets != nullptr) {
    if (p >= s.group_offsets[s.groups]) return;  // past the live rows (assignments with no expert)
    int lo = 0, hi = s.groups - 1;               // the group g with offsets[g] <= p < offsets[g + 1]
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (s.group_offsets[mid] <= p) lo = mid;
      else hi = mid - 1;
    }
    expert = lo;
  }
  const int token = s.token != nullptr ? s.token[p] : p;
  int adapter = batch.adapter_ids != nullptr ? batch.adapter_ids[token] : -1;
  if (adapter < 0 || adapter >= batch.adapter_count) adapter = -1;
  const int tid = static_cast<int>(threadIdx.x);
  if (tid == 0) s.row_adapter[p] = RowAdapter{adapter, expert};
  if (adapter < 0) return;
  const AdapterRef<T>& ad = batch.adapters[adapter];
  const int r = ad.rank < Rank ? ad.rank : Rank;
  constexpr int V = 16 / static_cast<int>(sizeof(T));
  const T* x = s.x + static_cast<long long>(s.x_rows != nullptr ? s.x_rows[p] : p) * s.ldx;
  const int warp = tid / 32, lane = tid % 32;
  for (int i = 0; i < s.matrices; ++i) {
    const T* a = ad.a[s.matrix[i]];
    if (a == nullptr || ad.b[s.matrix[i]] == nullptr) continue;
    for (int k = warp; k < r; k += kShrinkThreads / 32) {
      const T* ak = a + (static_cast<long long>(expert) * r + k) * s.k;
      float acc = 0.0f;
      for (int c = lane * V; c < s.k; c += 32 * V) {
        alignas(16) T xv[V];
        alignas(16) T av[V];
        mem::copy16(xv, x + c);
        mem::copy16(av, ak + c);
        DEEPSHOCK_UNROLL
        for (int j = 0; j < V; ++j) acc += static_cast<float>(xv[j]) * static_cast<float>(av[j]);
      }
      acc = warp::reduce(acc, [](float l, float rr) { return l + rr; });
      if (lane == 0) s.u[i][static_cast<long long>(p) * Rank + k] = ad.scaling * acc;
    }
  }
}

}  // namespace kernels

/// Launches the shrink of `batch` (nothing when it is empty).
template <class T, int Rank>
Status launch_shrink(const ShrinkBatch<T>& batch, rt::stream_t stream, bool dependent) {
  const long long blocks = batch.blocks();
  if (blocks == 0) return Status::success();
  return launch(kernels::shrink_kernel<T, Rank>, {dim3(static_cast<unsigned>(blocks)), dim3(kernels::kShrinkThreads), 0, stream, dependent},
                batch);
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::lora
