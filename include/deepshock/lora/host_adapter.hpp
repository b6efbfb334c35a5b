// deepshock/lora/host_adapter.hpp — one adapter's weights owned on the host, in the library's
// layout (lora/adapter.hpp): what an importer produces and what tests build, and from which a
// device copy is uploaded. Compiles everywhere; needs no CUDA.
#pragma once

#include <cstddef>
#include <vector>

#include "deepshock/lora/adapter.hpp"

namespace deepshock::lora {

/// One adapter of a layer on the host: per matrix m, A [experts_m, rank, in_m] and
/// B [experts_m, out_m, rank] (experts_m = 1 for the shared expert's matrices); empty vectors:
/// matrix not adapted. `a_alias[m]` >= 0 says matrix m reuses matrix a_alias[m]'s A (gate and up
/// sharing one A, PEFT's fused gate_up form); ref() then hands out the same pointer for both.
template <class T>
struct HostAdapter {
  int rank = 0;
  float scaling = 0.0f;
  std::vector<T> a[kMatrices];
  std::vector<T> b[kMatrices];
  int a_alias[kMatrices] = {-1, -1, -1, -1, -1, -1};

  bool adapts(int m) const { return !b[m].empty(); }
  /// The adapter's A of matrix m (its own, or the aliased one's).
  const std::vector<T>& a_of(int m) const { return a_alias[m] >= 0 ? a[a_alias[m]] : a[m]; }
  /// Host pointers into this adapter, in the kernels' struct.
  AdapterRef<T> ref() const {
    AdapterRef<T> r;
    r.rank = rank;
    r.scaling = scaling;
    for (int m = 0; m < kMatrices; ++m)
      if (adapts(m)) {
        r.a[m] = a_of(m).data();
        r.b[m] = b[m].data();
      }
    return r;
  }
};

}  // namespace deepshock::lora
