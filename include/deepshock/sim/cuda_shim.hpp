// deepshock/sim/cuda_shim.hpp — the CUDA names kernels use, for the host compiler.
//
// Included (through deepshock/platform/cuda.hpp) only when DEEPSHOCK_SIM is 1. It lets the same
// kernel source compile with g++: execution-space keywords become no-ops, `__shared__` becomes
// per-OS-thread static storage behind a redzone marker (static_smem.hpp: the engine poisons it
// before every block and keeps one copy per resident block), `threadIdx`/`blockIdx`/`blockDim`/
// `gridDim` read the running simulated thread, and the synchronising intrinsics are simulator
// barriers. Vector types cover what kernels load.
//
// Not provided on purpose: `extern __shared__` arrays (use deepshock::dynamic_smem), `<<<>>>`
// (use deepshock::launch), `__CUDA_ARCH__` (kernel bodies must not branch on it).
#pragma once

#include <atomic>
#include <bit>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/sim/engine.hpp"

#if !DEEPSHOCK_SIM
#error "deepshock/sim/cuda_shim.hpp is for simulator builds (DEEPSHOCK_SIM=1) only."
#endif

// ---- execution-space and storage keywords ----------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
// `__shared__ T x[N];` declares the variable after a marker object that the engine finds in the
// symbol table (static_smem.hpp); g++ places the marker right after the variable: its redzone.
#define DEEPSHOCK_SIM_CAT2(a, b) a##b
#define DEEPSHOCK_SIM_CAT(a, b) DEEPSHOCK_SIM_CAT2(a, b)
#define __shared__                                                                                                                 \
  [[maybe_unused, gnu::used]] static thread_local ::deepshock::sim::detail::SmemRedzone DEEPSHOCK_SIM_CAT(deepshock_smem_redzone_, \
                                                                                                          __COUNTER__);            \
  static thread_local
#define __launch_bounds__(...)
// A GNU attribute, not alignas: CUDA code writes it among the decl-specifiers
// (`__shared__ __align__(16) float buf[N];`), where a standard attribute may not stand.
#define __align__(n) __attribute__((aligned(n)))

// ---- built-in variables ------------------------------------------------------------------------
using uint3 = ::deepshock::sim::Dim3;
struct dim3 : ::deepshock::sim::Dim3 {
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : Dim3{x_, y_, z_} {}
  constexpr dim3(::deepshock::sim::Dim3 d) : Dim3(d) {}  // NOLINT: implicit, as CUDA's uint3 -> dim3
};
#define threadIdx (::deepshock::sim::detail::current_thread().tid)
#define blockIdx (::deepshock::sim::detail::current_thread().block->block_idx)
#define blockDim (::deepshock::sim::detail::current_thread().block->block_dim)
#define gridDim (::deepshock::sim::detail::current_thread().block->grid_dim)
inline constexpr int warpSize = 32;

// ---- vector types --------------------------------------------------------------------------------
#define DEEPSHOCK_SIM_VEC2(T, name, al) \
  struct alignas(al) name {             \
    T x, y;                             \
  };                                    \
  inline name make_##name(T x, T y) { return name{x, y}; }
#define DEEPSHOCK_SIM_VEC4(T, name, al) \
  struct alignas(al) name {             \
    T x, y, z, w;                       \
  };                                    \
  inline name make_##name(T x, T y, T z, T w) { return name{x, y, z, w}; }
DEEPSHOCK_SIM_VEC2(float, float2, 8)
DEEPSHOCK_SIM_VEC4(float, float4, 16)
DEEPSHOCK_SIM_VEC2(int, int2, 8)
DEEPSHOCK_SIM_VEC4(int, int4, 16)
DEEPSHOCK_SIM_VEC2(unsigned, uint2, 8)
DEEPSHOCK_SIM_VEC4(unsigned, uint4, 16)
DEEPSHOCK_SIM_VEC2(double, double2, 16)
#undef DEEPSHOCK_SIM_VEC2
#undef DEEPSHOCK_SIM_VEC4

// ---- block barriers ----------------------------------------------------------------------------
// Each takes its call site, so that the engine can tell divergent barriers apart (sync.hpp).
using deepshock_sim_site = ::deepshock::sim::detail::Site;
inline void __syncthreads(deepshock_sim_site site = deepshock_sim_site::current()) {
  (void)::deepshock::sim::detail::block_barrier(0, site);
}
inline int __syncthreads_count(int pred, deepshock_sim_site site = deepshock_sim_site::current()) {
  return ::deepshock::sim::detail::block_barrier(pred != 0, site).count;
}
inline int __syncthreads_and(int pred, deepshock_sim_site site = deepshock_sim_site::current()) {
  const auto r = ::deepshock::sim::detail::block_barrier(pred != 0, site);
  return r.count == r.waiters;
}
inline int __syncthreads_or(int pred, deepshock_sim_site site = deepshock_sim_site::current()) {
  return ::deepshock::sim::detail::block_barrier(pred != 0, site).count > 0;
}

// ---- warp-synchronous operations ---------------------------------------------------------------
namespace deepshock::sim::detail {

template <class T>
inline constexpr bool shuffleable_v = std::is_trivially_copyable_v<T> && sizeof(T) <= 8;

template <class T>
inline std::uint64_t to_bits(const T& v) {
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(std::uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

enum class ShflMode : int { idx, up, down, bfly };
struct ShflIn {
  std::uint64_t bits;
  ShflMode mode;
  int b;
  int width;
};

/// PTX `shfl.sync` semantics: segments of `width` lanes; out-of-segment sources read the own lane.
/// A source lane that the caller's mask names but that has exited (or that a partial warp does
/// not have) fails the launch: the caller counted on its value. A source lane outside the mask
/// yields all-ones bits (undefined on hardware; code such as a tree reduction over the first
/// `valid` lanes reads such lanes and discards what it got).
inline void shfl_compute(Thread* const* lanes, unsigned mask) {
  for (unsigned m = mask; m; m &= m - 1) {
    const int lane = __builtin_ctz(m);
    const auto& in = *static_cast<const ShflIn*>(lanes[lane]->in);
    const int w = in.width;
    if (w < 1 || w > 32 || (w & (w - 1))) fail("shuffle: width " + std::to_string(w) + " is not a power of two in [1, 32]");
    const int segmask = ~(w - 1) & 31;
    const int bval = in.b & 31;
    const int min_lane = lane & segmask;
    const int max_lane_up = min_lane;
    const int max_lane = min_lane | (31 & ~segmask);
    int j = lane;
    bool valid = true;
    switch (in.mode) {
      case ShflMode::up:
        j = lane - bval;
        valid = j >= max_lane_up;
        break;
      case ShflMode::down:
        j = lane + bval;
        valid = j <= max_lane;
        break;
      case ShflMode::bfly:
        j = lane ^ bval;
        valid = j <= max_lane;
        break;
      case ShflMode::idx:
        j = min_lane | (bval & ~segmask);
        valid = j <= max_lane;
        break;
    }
    if (!valid) j = lane;
    const unsigned named = lanes[lane]->pending_mask.load(std::memory_order_relaxed);  // the caller's mask
    if ((named & ~mask & (1u << j)) != 0)
      fail("shuffle: lane " + std::to_string(lane) + " of warp " + std::to_string(lanes[lane]->warp) + " reads lane " + std::to_string(j) +
           (lanes[j] == nullptr ? ", which this partial warp does not have" : ", which has exited") + " (the value is undefined on a GPU)");
    std::uint64_t r = ~std::uint64_t{0};
    if (mask & (1u << j)) r = static_cast<const ShflIn*>(lanes[j]->in)->bits;
    *static_cast<std::uint64_t*>(lanes[lane]->out) = r;
  }
}

template <class T>
inline T shuffle(unsigned mask, T var, ShflMode mode, int b, int width, const char* name) {
  static_assert(shuffleable_v<T>, "shuffles take trivially copyable values of at most 8 bytes");
  ShflIn in{to_bits(var), mode, b, width};
  std::uint64_t out = 0;
  warp_sync_op(mask, &shfl_compute, &in, &out, name);
  return from_bits<T>(out);
}

struct VoteOut {
  unsigned ballot;
};
inline void ballot_compute(Thread* const* lanes, unsigned mask) {
  unsigned ballot = 0;
  for (unsigned m = mask; m; m &= m - 1) {
    const int l = __builtin_ctz(m);
    if (*static_cast<const int*>(lanes[l]->in)) ballot |= 1u << l;
  }
  for (unsigned m = mask; m; m &= m - 1) *static_cast<unsigned*>(lanes[__builtin_ctz(m)]->out) = ballot;
}

struct MatchIn {
  std::uint64_t bits;
};
struct MatchOut {
  unsigned result;
  int all;
};
inline void match_compute(Thread* const* lanes, unsigned mask) {
  bool all = true;
  const std::uint64_t first = static_cast<const MatchIn*>(lanes[__builtin_ctz(mask)]->in)->bits;
  for (unsigned m = mask; m; m &= m - 1) {
    const int l = __builtin_ctz(m);
    const std::uint64_t v = static_cast<const MatchIn*>(lanes[l]->in)->bits;
    all = all && v == first;
    unsigned same = 0;
    for (unsigned m2 = mask; m2; m2 &= m2 - 1) {
      const int l2 = __builtin_ctz(m2);
      if (static_cast<const MatchIn*>(lanes[l2]->in)->bits == v) same |= 1u << l2;
    }
    static_cast<MatchOut*>(lanes[l]->out)->result = same;
  }
  for (unsigned m = mask; m; m &= m - 1) static_cast<MatchOut*>(lanes[__builtin_ctz(m)]->out)->all = all;
}

enum class RedOp : int { add, min_s, max_s, min_u, max_u, and_, or_, xor_ };
struct RedIn {
  unsigned value;
  RedOp op;
};
inline void reduce_compute(Thread* const* lanes, unsigned mask) {
  const RedOp op = static_cast<const RedIn*>(lanes[__builtin_ctz(mask)]->in)->op;
  unsigned acc = 0;
  bool first = true;
  for (unsigned m = mask; m; m &= m - 1) {
    const auto& in = *static_cast<const RedIn*>(lanes[__builtin_ctz(m)]->in);
    if (in.op != op) fail("__reduce_*_sync: lanes of one mask used different reductions");
    const unsigned v = in.value;
    if (first) {
      acc = v;
      first = false;
      continue;
    }
    switch (op) {
      case RedOp::add: acc += v; break;
      case RedOp::min_s: acc = static_cast<unsigned>(std::min(static_cast<int>(acc), static_cast<int>(v))); break;
      case RedOp::max_s: acc = static_cast<unsigned>(std::max(static_cast<int>(acc), static_cast<int>(v))); break;
      case RedOp::min_u: acc = std::min(acc, v); break;
      case RedOp::max_u: acc = std::max(acc, v); break;
      case RedOp::and_: acc &= v; break;
      case RedOp::or_: acc |= v; break;
      case RedOp::xor_: acc ^= v; break;
    }
  }
  for (unsigned m = mask; m; m &= m - 1) *static_cast<unsigned*>(lanes[__builtin_ctz(m)]->out) = acc;
}
inline unsigned warp_reduce(unsigned mask, unsigned v, RedOp op, const char* name) {
  RedIn in{v, op};
  unsigned out = 0;
  warp_sync_op(mask, &reduce_compute, &in, &out, name);
  return out;
}

inline void sync_compute(Thread* const*, unsigned) {}

}  // namespace deepshock::sim::detail

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::deepshock::sim::detail::warp_sync_op(mask, &::deepshock::sim::detail::sync_compute, nullptr, nullptr, "__syncwarp");
}

template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  return ::deepshock::sim::detail::shuffle(mask, var, ::deepshock::sim::detail::ShflMode::idx, src_lane, width, "__shfl_sync");
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::deepshock::sim::detail::shuffle(mask, var, ::deepshock::sim::detail::ShflMode::up, static_cast<int>(delta), width,
                                           "__shfl_up_sync");
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::deepshock::sim::detail::shuffle(mask, var, ::deepshock::sim::detail::ShflMode::down, static_cast<int>(delta), width,
                                           "__shfl_down_sync");
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  return ::deepshock::sim::detail::shuffle(mask, var, ::deepshock::sim::detail::ShflMode::bfly, lane_mask, width, "__shfl_xor_sync");
}

inline unsigned __ballot_sync(unsigned mask, int pred) {
  const int in = pred != 0;
  unsigned out = 0;
  ::deepshock::sim::detail::warp_sync_op(mask, &::deepshock::sim::detail::ballot_compute, &in, &out, "__ballot_sync");
  return out;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }
/// Lanes of the warp that have not exited. (Hardware reports the lanes converged at the call;
/// the simulator does not track divergence.)
inline unsigned __activemask() {
  auto& t = ::deepshock::sim::detail::current_thread();
  const auto& w = t.block->warps[t.warp];
  return w.exists & ~w.exited.load(std::memory_order_relaxed);
}

template <class T>
inline unsigned __match_any_sync(unsigned mask, T value) {
  static_assert(std::is_integral_v<T> || std::is_floating_point_v<T>, "__match_any_sync takes 32/64-bit scalars");
  ::deepshock::sim::detail::MatchIn in{::deepshock::sim::detail::to_bits(value)};
  ::deepshock::sim::detail::MatchOut out{};
  ::deepshock::sim::detail::warp_sync_op(mask, &::deepshock::sim::detail::match_compute, &in, &out, "__match_any_sync");
  return out.result;
}
template <class T>
inline unsigned __match_all_sync(unsigned mask, T value, int* pred) {
  static_assert(std::is_integral_v<T> || std::is_floating_point_v<T>, "__match_all_sync takes 32/64-bit scalars");
  ::deepshock::sim::detail::MatchIn in{::deepshock::sim::detail::to_bits(value)};
  ::deepshock::sim::detail::MatchOut out{};
  ::deepshock::sim::detail::warp_sync_op(mask, &::deepshock::sim::detail::match_compute, &in, &out, "__match_all_sync");
  *pred = out.all;
  return out.all ? mask : 0u;
}

#define DEEPSHOCK_SIM_REDUCE(name, T, op)                                                                                       \
  inline T name(unsigned mask, T value) {                                                                                       \
    return static_cast<T>(                                                                                                      \
        ::deepshock::sim::detail::warp_reduce(mask, static_cast<unsigned>(value), ::deepshock::sim::detail::RedOp::op, #name)); \
  }
DEEPSHOCK_SIM_REDUCE(__reduce_add_sync, unsigned, add)
DEEPSHOCK_SIM_REDUCE(__reduce_add_sync, int, add)
DEEPSHOCK_SIM_REDUCE(__reduce_min_sync, unsigned, min_u)
DEEPSHOCK_SIM_REDUCE(__reduce_min_sync, int, min_s)
DEEPSHOCK_SIM_REDUCE(__reduce_max_sync, unsigned, max_u)
DEEPSHOCK_SIM_REDUCE(__reduce_max_sync, int, max_s)
DEEPSHOCK_SIM_REDUCE(__reduce_and_sync, unsigned, and_)
DEEPSHOCK_SIM_REDUCE(__reduce_or_sync, unsigned, or_)
DEEPSHOCK_SIM_REDUCE(__reduce_xor_sync, unsigned, xor_)
#undef DEEPSHOCK_SIM_REDUCE

// ---- atomics (std::atomic_ref; the old value is returned, as in CUDA) --------------------------
// Each tells the engine whether it changed memory (progress) or only polled (a yield point, so
// that spin loops on another thread's or block's flag make progress): sync.hpp, atomic_done.
namespace deepshock::sim::detail {
template <class T>
inline std::atomic_ref<T> aref(T* p) {
  return std::atomic_ref<T>(*p);
}
template <class T>
inline bool same_bits(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}
/// Read-modify-write `*p = f(*p)` as one atomic step; returns the old value.
template <class T, class F>
inline T atomic_rmw(T* p, F f) {
  auto r = aref(p);
  T old = r.load();
  T desired = f(old);
  while (!r.compare_exchange_weak(old, desired)) desired = f(old);
  atomic_done(!same_bits(old, desired));
  return old;
}
}  // namespace deepshock::sim::detail

// Exactly CUDA's overload set, so code that builds here builds with nvcc too.
#define DEEPSHOCK_SIM_ATOMIC(name, T, expr)                                         \
  inline T name(T* p, T v) {                                                        \
    return ::deepshock::sim::detail::atomic_rmw(p, [v](T o) -> T { return expr; }); \
  }
DEEPSHOCK_SIM_ATOMIC(atomicAdd, int, static_cast<int>(static_cast<unsigned>(o) + static_cast<unsigned>(v)))
DEEPSHOCK_SIM_ATOMIC(atomicAdd, unsigned, o + v)
DEEPSHOCK_SIM_ATOMIC(atomicAdd, unsigned long long, o + v)
DEEPSHOCK_SIM_ATOMIC(atomicAdd, float, o + v)
DEEPSHOCK_SIM_ATOMIC(atomicAdd, double, o + v)
DEEPSHOCK_SIM_ATOMIC(atomicSub, int, static_cast<int>(static_cast<unsigned>(o) - static_cast<unsigned>(v)))
DEEPSHOCK_SIM_ATOMIC(atomicSub, unsigned, o - v)
DEEPSHOCK_SIM_ATOMIC(atomicExch, int, ((void)o, v))
DEEPSHOCK_SIM_ATOMIC(atomicExch, unsigned, ((void)o, v))
DEEPSHOCK_SIM_ATOMIC(atomicExch, unsigned long long, ((void)o, v))
DEEPSHOCK_SIM_ATOMIC(atomicExch, float, ((void)o, v))
DEEPSHOCK_SIM_ATOMIC(atomicMin, int, o < v ? o : v)
DEEPSHOCK_SIM_ATOMIC(atomicMin, unsigned, o < v ? o : v)
DEEPSHOCK_SIM_ATOMIC(atomicMin, long long, o < v ? o : v)
DEEPSHOCK_SIM_ATOMIC(atomicMin, unsigned long long, o < v ? o : v)
DEEPSHOCK_SIM_ATOMIC(atomicMax, int, o > v ? o : v)
DEEPSHOCK_SIM_ATOMIC(atomicMax, unsigned, o > v ? o : v)
DEEPSHOCK_SIM_ATOMIC(atomicMax, long long, o > v ? o : v)
DEEPSHOCK_SIM_ATOMIC(atomicMax, unsigned long long, o > v ? o : v)
DEEPSHOCK_SIM_ATOMIC(atomicAnd, int, (o & v))
DEEPSHOCK_SIM_ATOMIC(atomicAnd, unsigned, (o & v))
DEEPSHOCK_SIM_ATOMIC(atomicAnd, unsigned long long, (o & v))
DEEPSHOCK_SIM_ATOMIC(atomicOr, int, (o | v))
DEEPSHOCK_SIM_ATOMIC(atomicOr, unsigned, (o | v))
DEEPSHOCK_SIM_ATOMIC(atomicOr, unsigned long long, (o | v))
DEEPSHOCK_SIM_ATOMIC(atomicXor, int, (o ^ v))
DEEPSHOCK_SIM_ATOMIC(atomicXor, unsigned, (o ^ v))
DEEPSHOCK_SIM_ATOMIC(atomicXor, unsigned long long, (o ^ v))
DEEPSHOCK_SIM_ATOMIC(atomicInc, unsigned, (o >= v) ? 0u : o + 1)
DEEPSHOCK_SIM_ATOMIC(atomicDec, unsigned, (o == 0 || o > v) ? v : o - 1)
#undef DEEPSHOCK_SIM_ATOMIC
#define DEEPSHOCK_SIM_CAS(T)                                                                                 \
  inline T atomicCAS(T* p, T compare, T v) {                                                                 \
    return ::deepshock::sim::detail::atomic_rmw(p, [compare, v](T o) -> T { return o == compare ? v : o; }); \
  }
DEEPSHOCK_SIM_CAS(int)
DEEPSHOCK_SIM_CAS(unsigned)
DEEPSHOCK_SIM_CAS(unsigned long long)
DEEPSHOCK_SIM_CAS(unsigned short)
#undef DEEPSHOCK_SIM_CAS

// ---- fences, sleep, trap, clock ----------------------------------------------------------------
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __nanosleep(unsigned) { ::deepshock::sim::detail::sleep_yield(); }
[[noreturn]] inline void __trap() { throw ::deepshock::sim::SimError("__trap() called"); }
inline long long clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- integer and float intrinsics --------------------------------------------------------------
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return x ? std::countr_zero(static_cast<unsigned>(x)) + 1 : 0; }
inline int __ffsll(long long x) { return x ? std::countr_zero(static_cast<unsigned long long>(x)) + 1 : 0; }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
  x = ((x >> 8) & 0x00FF00FFu) | ((x & 0x00FF00FFu) << 8);
  return (x >> 16) | (x << 16);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return static_cast<unsigned>((std::uint64_t(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  const unsigned long long a_lo = a & 0xffffffffu, a_hi = a >> 32, b_lo = b & 0xffffffffu, b_hi = b >> 32;
  const unsigned long long lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
  const unsigned long long cross = (lo_lo >> 32) + (hi_lo & 0xffffffffu) + lo_hi;
  return hi_hi + (hi_lo >> 32) + (cross >> 32);
}
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __powf(float a, float b) { return std::pow(a, b); }
inline float __saturatef(float x) { return std::isnan(x) ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
// Round to nearest even, saturating; NaN -> 0 (as the hardware conversion).
inline int __float2int_rn(float x) {
  if (std::isnan(x)) return 0;
  const double r = std::nearbyint(static_cast<double>(x));
  return r <= -2147483648.0 ? INT32_MIN : r >= 2147483647.0 ? INT32_MAX : static_cast<int>(r);
}
inline unsigned __float2uint_rn(float x) {
  if (std::isnan(x)) return 0;
  const double r = std::nearbyint(static_cast<double>(x));
  return r <= 0.0 ? 0u : r >= 4294967295.0 ? UINT32_MAX : static_cast<unsigned>(r);
}
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// CUDA's global min/max overloads (same-type, and the mixed signed/unsigned ones, which
// compare as unsigned).
#define DEEPSHOCK_SIM_MINMAX(A, B, R)                                                                              \
  inline R min(A a, B b) { return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); } \
  inline R max(A a, B b) { return static_cast<R>(a) > static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); }
DEEPSHOCK_SIM_MINMAX(int, int, int)
DEEPSHOCK_SIM_MINMAX(unsigned, unsigned, unsigned)
DEEPSHOCK_SIM_MINMAX(int, unsigned, unsigned)
DEEPSHOCK_SIM_MINMAX(unsigned, int, unsigned)
DEEPSHOCK_SIM_MINMAX(long, long, long)
DEEPSHOCK_SIM_MINMAX(unsigned long, unsigned long, unsigned long)
DEEPSHOCK_SIM_MINMAX(long, unsigned long, unsigned long)
DEEPSHOCK_SIM_MINMAX(unsigned long, long, unsigned long)
DEEPSHOCK_SIM_MINMAX(long long, long long, long long)
DEEPSHOCK_SIM_MINMAX(unsigned long long, unsigned long long, unsigned long long)
DEEPSHOCK_SIM_MINMAX(long long, unsigned long long, unsigned long long)
DEEPSHOCK_SIM_MINMAX(unsigned long long, long long, unsigned long long)
#undef DEEPSHOCK_SIM_MINMAX
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
