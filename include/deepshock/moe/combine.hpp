// deepshock/moe/combine.hpp — the MoE layer's last kernels: the combine, which sums each token's
// weighted expert outputs in slot order (plus the shared expert, optionally sigmoid-gated) into
// y, and the check of caller-supplied expert ids. moe::Layer launches them (moe/layer.hpp).
#pragma once

#include <type_traits>

#include "deepshock/core/config.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/block.hpp"
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/memory.hpp"

namespace deepshock::moe {

/// Device pointers of the combine step.
template <class T>
struct CombineArgs {
  const float* slot_out = nullptr;     ///< [T*k, H] weighted expert outputs per slot (ordered)
  const int* slot_position = nullptr;  ///< [T*k] -1 = slot not routed (its row is not read)
  const float* routed_sum = nullptr;   ///< [T, H] atomic accumulator (instead of slot_out)
  const float* shared_out = nullptr;   ///< [T, H] shared expert output, or null
  const T* x = nullptr;                ///< [T, H] (row stride ldx): for the sigmoid shared gate
  long long ldx = 0;
  const T* shared_gate = nullptr;  ///< [H] or null (weight 1)
  int k = 0, hidden = 0;
  T* y = nullptr;
  long long ldy = 0;
};

namespace kernels {

/// y[t] = sum_j slot_out[t*k + j] (slot order) + g_t * shared_out[t]. Grid (T, ceil(H / (4 x
/// Threads))): block (t, c) does columns [4 c Threads, 4 (c + 1) Threads) of token t, each thread
/// four consecutive columns with 16-byte loads (H % 4 == 0, 16-byte aligned rows), so that at
/// decode (T = 1) the k slot rows are read by several blocks in one round of loads rather than
/// by one block looping over H.
template <class T, int Threads>
DEEPSHOCK_KERNEL void combine_kernel(CombineArgs<T> a) {
  __shared__ float scratch[block::kScratchWords];
  __shared__ int pos[32];
  pdl::wait();  // slot_out and shared_out come from the grouped GEMMs
  pdl::launch_dependents();
  const int tid = static_cast<int>(threadIdx.x);
  const long long t = blockIdx.x;
  if (a.slot_out != nullptr && tid < a.k) pos[tid] = a.slot_position[t * a.k + tid];
  float g = 1.0f;
  if (a.shared_gate != nullptr) {  // every block of the token computes the same gate
    float dot = 0.0f;
    for (int h = tid; h < a.hidden; h += Threads)
      dot = fmaf(static_cast<float>(a.x[t * a.ldx + h]), static_cast<float>(a.shared_gate[h]), dot);
    dot = block::reduce_sum(dot, scratch);
    g = 1.0f / (1.0f + expf(-dot));
  }
  __syncthreads();
  const int h = (static_cast<int>(blockIdx.y) * Threads + tid) * 4;
  if (h >= a.hidden) return;
  float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  auto load4 = [](const float* src, float(&v)[4]) {
    float4 q;  // a 16-byte aligned register quad for the vector load
    mem::copy16(&q, src);
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  };
  auto add4 = [&](const float* src) {
    float v[4];
    load4(src, v);
    for (int i = 0; i < 4; ++i) s[i] += v[i];
  };
  if (a.routed_sum != nullptr) {
    add4(a.routed_sum + t * a.hidden + h);
  } else {
    for (int j = 0; j < a.k; ++j)
      if (pos[j] >= 0) add4(a.slot_out + (t * a.k + j) * a.hidden + h);
  }
  if (a.shared_out != nullptr) {
    float v[4];
    load4(a.shared_out + t * a.hidden + h, v);
    for (int i = 0; i < 4; ++i) s[i] = fmaf(g, v[i], s[i]);
  }
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<T, float>) a.y[t * a.ldy + h + i] = s[i];
    else a.y[t * a.ldy + h + i] = T(s[i]);
  }
}

/// Counts ids < -1 or >= E (caller-supplied routing).
DEEPSHOCK_KERNEL void count_bad_ids_kernel(const int* ids, long long n, int E, int* bad) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n && (ids[i] < -1 || ids[i] >= E)) atomicAdd(bad, 1);
}

}  // namespace kernels

}  // namespace deepshock::moe
#endif  // DEEPSHOCK_HAS_KERNELS
