// deepshock/platform/warp.hpp — warp-level primitives built on `_sync` shuffles.
//
// All functions take the participating lanes explicitly. `valid` (default 32) says how many
// leading lanes of the warp take part: a block whose size is not a multiple of 32 has a partial
// last warp, and its mask is `lanes_mask(valid)`. Results are returned to every participating
// lane. Values of any trivially copyable type up to 8 bytes can be shuffled (bf16, fp16 included).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/platform/cuda.hpp"

#if DEEPSHOCK_HAS_KERNELS
namespace deepshock::warp {

inline constexpr unsigned kFullMask = 0xffffffffu;

/// Mask of the first `valid` lanes (1 <= valid <= 32).
DEEPSHOCK_HOST_DEVICE constexpr unsigned lanes_mask(int valid) { return valid >= 32 ? kFullMask : ((1u << valid) - 1u); }

/// This thread's lane within its warp (linear thread index modulo 32).
DEEPSHOCK_DEVICE unsigned lane_id() {
  const unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  return linear & 31u;
}

namespace detail {
/// Shuffles any trivially copyable value: as one 32- or 64-bit word when it fits, otherwise
/// word by word. `op(word)` performs the shuffle of one word.
template <class T, class Op>
DEEPSHOCK_DEVICE T shuffle_value(const T& v, Op op) {
  static_assert(std::is_trivially_copyable_v<T>, "warp shuffles take trivially copyable values");
  T r;
  if constexpr (sizeof(T) <= 4) {
    unsigned w = 0;
    std::memcpy(&w, &v, sizeof(T));
    w = op(w);
    std::memcpy(&r, &w, sizeof(T));
  } else if constexpr (sizeof(T) <= 8) {
    unsigned long long w = 0;
    std::memcpy(&w, &v, sizeof(T));
    w = op(w);
    std::memcpy(&r, &w, sizeof(T));
  } else {
    constexpr int kWords = static_cast<int>((sizeof(T) + 3) / 4);
    unsigned w[kWords] = {};
    std::memcpy(w, &v, sizeof(T));
    DEEPSHOCK_UNROLL
    for (int i = 0; i < kWords; ++i) w[i] = op(w[i]);
    std::memcpy(&r, w, sizeof(T));
  }
  return r;
}
}  // namespace detail

template <class T>
DEEPSHOCK_DEVICE T shfl(T v, int src_lane, unsigned mask = kFullMask, int width = 32) {
  return detail::shuffle_value(v, [=](auto w) { return __shfl_sync(mask, w, src_lane, width); });
}
template <class T>
DEEPSHOCK_DEVICE T shfl_xor(T v, int lane_mask, unsigned mask = kFullMask, int width = 32) {
  return detail::shuffle_value(v, [=](auto w) { return __shfl_xor_sync(mask, w, lane_mask, width); });
}
template <class T>
DEEPSHOCK_DEVICE T shfl_up(T v, unsigned delta, unsigned mask = kFullMask, int width = 32) {
  return detail::shuffle_value(v, [=](auto w) { return __shfl_up_sync(mask, w, delta, width); });
}
template <class T>
DEEPSHOCK_DEVICE T shfl_down(T v, unsigned delta, unsigned mask = kFullMask, int width = 32) {
  return detail::shuffle_value(v, [=](auto w) { return __shfl_down_sync(mask, w, delta, width); });
}

/// Reduction with a binary operation over the first `valid` lanes; every one of them gets the
/// same result: a fixed tree towards lane 0 (lane i combines with lane i + offset), then a
/// broadcast from lane 0. `op` need not be commutative for the lanes to agree, and the result
/// is deterministic.
template <class T, class Op>
DEEPSHOCK_DEVICE T reduce(T v, Op op, int valid = 32) {
  const unsigned mask = lanes_mask(valid);
  const int lane = static_cast<int>(lane_id());
  DEEPSHOCK_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) {
    const T other = shfl_down(v, static_cast<unsigned>(offset), mask);
    if (lane + offset < valid) v = op(v, other);
  }
  return shfl(v, 0, mask);
}

/// All-reduce over the full warp by a butterfly (shfl_xor, no broadcast): every lane combines
/// the values in its own order, so `op` must give the same result in any order (max, min, the
/// largest two of a set of numbers; not float sums) for the lanes to agree.
template <class T, class Op>
DEEPSHOCK_DEVICE T butterfly_reduce(T v, Op op) {
  DEEPSHOCK_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, shfl_xor(v, offset));
  return v;
}

struct Sum {
  template <class T>
  DEEPSHOCK_HOST_DEVICE T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  template <class T>
  DEEPSHOCK_HOST_DEVICE T operator()(T a, T b) const {
    return a < b ? b : a;
  }
};
struct Min {
  template <class T>
  DEEPSHOCK_HOST_DEVICE T operator()(T a, T b) const {
    return b < a ? b : a;
  }
};

template <class T>
DEEPSHOCK_DEVICE T reduce_sum(T v, int valid = 32) {
  return reduce(v, Sum{}, valid);
}
template <class T>
DEEPSHOCK_DEVICE T reduce_max(T v, int valid = 32) {
  return reduce(v, Max{}, valid);
}
template <class T>
DEEPSHOCK_DEVICE T reduce_min(T v, int valid = 32) {
  return reduce(v, Min{}, valid);
}

/// Inclusive prefix sum over the first `valid` lanes (lane i gets v_0 + ... + v_i).
template <class T>
DEEPSHOCK_DEVICE T inclusive_scan_sum(T v, int valid = 32) {
  const unsigned mask = lanes_mask(valid);
  const int lane = static_cast<int>(lane_id());
  DEEPSHOCK_UNROLL
  for (int offset = 1; offset < 32; offset <<= 1) {
    const T other = shfl_up(v, static_cast<unsigned>(offset), mask);
    if (lane >= offset) v = v + other;
  }
  return v;
}

/// Exclusive prefix sum (lane 0 gets T{}); `total` receives the sum of all valid lanes. The
/// exclusive value is the neighbour's inclusive sum (not inclusive minus own value), so it is
/// exact wherever the inclusive sum is.
template <class T>
DEEPSHOCK_DEVICE T exclusive_scan_sum(T v, T& total, int valid = 32) {
  const unsigned mask = lanes_mask(valid);
  const T inc = inclusive_scan_sum(v, valid);
  total = shfl(inc, valid - 1, mask);
  const T prev = shfl_up(inc, 1u, mask);
  return lane_id() == 0 ? T{} : prev;
}

/// A (score, index) pair ranked by score, then by lower index. NaN scores rank below every
/// number, so the order is total and the result never depends on the reduction order.
template <class T>
struct Ranked {
  T score;
  int index;
};

template <class T>
DEEPSHOCK_HOST_DEVICE bool ranks_before(const Ranked<T>& a, const Ranked<T>& b) {
  const bool a_nan = !(a.score == a.score);
  const bool b_nan = !(b.score == b.score);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && a.score != b.score) return a.score > b.score;
  return a.index < b.index;
}

/// The best (highest score, then lowest index) pair over the first `valid` lanes.
template <class T>
DEEPSHOCK_DEVICE Ranked<T> argmax(Ranked<T> v, int valid = 32) {
  return reduce(
      v, [](const Ranked<T>& a, const Ranked<T>& b) { return ranks_before(a, b) ? a : b; }, valid);
}

namespace detail {
/// (score, index) of a float candidate as one 64-bit key whose unsigned order is the rank order
/// of ranks_before: numbers by value (-0 and +0 equal), below them NaN, each tie by the lower
/// index; 0 is an empty slot (index < 0), below everything. High word: the float's bits mapped to
/// an order-preserving unsigned value + 1 (0 for NaN); low word: 2^32 - 1 - index (>= 2^31).
DEEPSHOCK_DEVICE std::uint64_t rank_key(float score, int index) {
  if (index < 0) return 0;
  std::uint32_t hi = 0;
  if (score == score) {
    std::uint32_t u = deepshock::detail::float_to_bits(score);
    if (u == 0x80000000u) u = 0;  // -0 ranks as +0
    hi = ((u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u)) + 1u;
  }
  return (static_cast<std::uint64_t>(hi) << 32) | (0xFFFFFFFFu - static_cast<std::uint32_t>(index));
}
/// The candidate of a key (score -0 comes back as +0, a NaN as the canonical NaN; an empty key as
/// index -1 and the lowest float).
DEEPSHOCK_DEVICE Ranked<float> rank_key_candidate(std::uint64_t key) {
  if (key == 0) return {std::numeric_limits<float>::lowest(), -1};
  const std::uint32_t hi = static_cast<std::uint32_t>(key >> 32);
  const int index = static_cast<int>(0xFFFFFFFFu - static_cast<std::uint32_t>(key));
  if (hi == 0) return {std::numeric_limits<float>::quiet_NaN(), index};
  std::uint32_t u = hi - 1u;
  u = (u & 0x80000000u) != 0 ? (u & 0x7FFFFFFFu) : ~u;
  return {deepshock::detail::bits_to_float(u), index};
}
/// The largest key over the first `valid` lanes, on every one of them.
DEEPSHOCK_DEVICE std::uint64_t max_key(std::uint64_t v, int valid) {
  const auto larger = [](std::uint64_t a, std::uint64_t b) { return a > b ? a : b; };
  return valid < 32 ? reduce(v, larger, valid) : butterfly_reduce(v, larger);
}
}  // namespace detail

/// Warp top-k over candidates spread across lanes: lane l holds `N` candidates
/// (`scores[i]`, `indices[i]`); indices must be unique and >= 0, and a slot with index -1 is
/// empty. After the call every participating lane holds the K best in rank order in
/// `out[0..K)` (entries beyond the number of candidates get index -1 and the lowest score). K
/// rounds of a warp arg-max; a lane's local scan is over its N candidates. Ties go to the lower
/// index. For float scores the rounds compare one 64-bit key per candidate (detail::rank_key:
/// integer compares, no branches), and a score of -0 is returned as +0.
template <int K, int N, class T>
DEEPSHOCK_DEVICE void topk(const T (&scores)[N], const int (&indices)[N], Ranked<T> (&out)[K], int valid = 32) {
  static_assert(K >= 1 && K <= 32, "deepshock::warp::topk supports k from 1 to 32.");
  static_assert(N >= 1 && N <= 32, "deepshock::warp::topk takes 1 to 32 candidates per lane.");
  if constexpr (std::is_same_v<T, float>) {
    std::uint64_t key[N];
    DEEPSHOCK_UNROLL
    for (int i = 0; i < N; ++i) key[i] = detail::rank_key(scores[i], indices[i]);
    DEEPSHOCK_UNROLL
    for (int r = 0; r < K; ++r) {
      std::uint64_t best = 0;
      DEEPSHOCK_UNROLL
      for (int i = 0; i < N; ++i) best = key[i] > best ? key[i] : best;
      const std::uint64_t win = detail::max_key(best, valid);
      out[r] = detail::rank_key_candidate(win);
      DEEPSHOCK_UNROLL
      for (int i = 0; i < N; ++i) key[i] = key[i] == win ? 0 : key[i];  // keys are unique; 0 stays 0
    }
  } else {
    unsigned taken = 0;  // bit i: this lane's candidate i already selected
    DEEPSHOCK_UNROLL
    for (int r = 0; r < K; ++r) {
      Ranked<T> best{std::numeric_limits<T>::lowest(), -1};
      bool have = false;
      DEEPSHOCK_UNROLL
      for (int i = 0; i < N; ++i) {
        if (indices[i] < 0 || (taken >> i & 1u)) continue;
        const Ranked<T> c{scores[i], indices[i]};
        if (!have || ranks_before(c, best)) {
          best = c;
          have = true;
        }
      }
      // Empty lanes offer index -1, which must lose to any real candidate.
      const Ranked<T> win = reduce(
          best,
          [](const Ranked<T>& a, const Ranked<T>& b) {
            if ((a.index < 0) != (b.index < 0)) return a.index < 0 ? b : a;
            return ranks_before(a, b) ? a : b;
          },
          valid);
      out[r] = win;
      if (win.index >= 0) {
        DEEPSHOCK_UNROLL
        for (int i = 0; i < N; ++i)
          if (indices[i] == win.index) taken |= 1u << i;
      }
    }
  }
}

}  // namespace deepshock::warp
#endif  // DEEPSHOCK_HAS_KERNELS
