// deepshock/platform/launch.hpp — the launch helper and the dynamic-shared-memory helper.
//
// Kernels are launched only through `deepshock::launch`, never with `<<<>>>`, so that the same
// call runs on a GPU (nvcc) and in the simulator (DEEPSHOCK_SIM):
//
//   DEEPSHOCK_KERNEL void scale(float* x, int n, float a) { ... }
//   Status st = deepshock::launch(scale, {grid, block, smem_bytes, stream}, x, n, 2.0f);
//
// Arguments are converted to the kernel's parameter types and copied, as CUDA does. Launch
// errors (bad configuration, too much shared memory, a simulator failure) come back as a Status.
// Kernels reach their dynamic shared memory with `deepshock::dynamic_smem<T>()`.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <type_traits>
#include <utility>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/runtime.hpp"

namespace deepshock {

/// Grid, block, dynamic shared memory (bytes) and stream of one launch.
struct LaunchConfig {
  dim3 grid{1, 1, 1};
  dim3 block{1, 1, 1};
  std::size_t smem_bytes = 0;
  rt::stream_t stream = nullptr;
};

namespace detail {
template <class...>
inline constexpr bool always_false_v = false;
}  // namespace detail

#if DEEPSHOCK_CUDA
namespace detail {
/// Opts `kernel` into `dynamic_bytes` of dynamic shared memory when static + dynamic exceeds
/// 48 KiB. Per (kernel, device) the static size is asked of the runtime once and the opt-in is
/// remembered, so a steady stream of launches costs one cudaGetDevice and a map lookup, not a
/// cudaFuncSetAttribute each (host time matters at decode). More than the device's opt-in
/// maximum per block is an invalid_argument naming smem_bytes (e.g. Hopper tiles on an sm_89 GPU).
inline Status opt_in_smem(const void* kernel, std::size_t dynamic_bytes) {
  struct Entry {
    std::size_t static_bytes = 0;
    std::size_t opted = 0;      ///< largest dynamic size set so far
    std::size_t max_block = 0;  ///< the device's opt-in maximum of shared memory per block
  };
  struct Key {
    const void* kernel;
    int device;
    bool operator==(const Key& o) const { return kernel == o.kernel && device == o.device; }
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const { return std::hash<const void*>()(k.kernel) ^ static_cast<std::size_t>(k.device); }
  };
  static std::mutex m;
  static std::unordered_map<Key, Entry, KeyHash> cache;
  int device = 0;
  DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(cudaGetDevice(&device), "cudaGetDevice"));
  std::lock_guard<std::mutex> lock(m);
  const Key key{kernel, device};
  auto it = cache.find(key);
  if (it == cache.end()) {
    cudaFuncAttributes attr{};
    DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(cudaFuncGetAttributes(&attr, kernel), "cudaFuncGetAttributes"));
    int max_block = 0;
    DEEPSHOCK_RETURN_IF_ERROR(
        rt::from_cuda(cudaDeviceGetAttribute(&max_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "cudaDeviceGetAttribute"));
    it = cache.emplace(key, Entry{attr.sharedSizeBytes, 0, static_cast<std::size_t>(max_block)}).first;
  }
  Entry& e = it->second;
  if (e.static_bytes + dynamic_bytes <= 48 * 1024 || dynamic_bytes <= e.opted) return Status::success();
  if (e.static_bytes + dynamic_bytes > e.max_block)
    return Status::invalid_argument("smem_bytes", std::to_string(dynamic_bytes) + " bytes of dynamic (+ " + std::to_string(e.static_bytes) +
                                                      " static) shared memory exceed this device's maximum of " + std::to_string(e.max_block) +
                                                      " per block (a tile tuning for another architecture?)");
  DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(dynamic_bytes)),
      "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)"));
  e.opted = dynamic_bytes;
  return Status::success();
}

template <class... Params>
Status prepare_smem(void (*kernel)(Params...), std::size_t dynamic_bytes) {
  if (dynamic_bytes == 0) return Status::success();
  return opt_in_smem(reinterpret_cast<const void*>(kernel), dynamic_bytes);
}
}  // namespace detail
#endif

/// Launches `kernel` with `cfg`. Each argument converts implicitly to its parameter's type, as
/// with `<<<>>>` (the parameter types come from the kernel alone, never from the arguments).
template <class... Params>
Status launch(void (*kernel)(Params...), const LaunchConfig& cfg, std::type_identity_t<Params>... args) {
  if (kernel == nullptr) return Status::invalid_argument("kernel", "must not be null");
#if DEEPSHOCK_CUDA
  DEEPSHOCK_RETURN_IF_ERROR(detail::prepare_smem(kernel, cfg.smem_bytes));
  kernel<<<cfg.grid, cfg.block, cfg.smem_bytes, cfg.stream>>>(args...);
  return rt::from_cuda(cudaGetLastError(), "kernel launch");
#elif DEEPSHOCK_SIM
  struct Ctx {
    void (*kernel)(Params...);
    std::tuple<std::decay_t<Params>...> args;
  };
  Ctx ctx{kernel, std::tuple<std::decay_t<Params>...>(args...)};
  // Each simulated thread gets its own copy of the parameters (kernels may modify them).
  auto body = [](void* p) {
    const auto* c = static_cast<const Ctx*>(p);
    auto own = c->args;
    std::apply(c->kernel, own);
  };
  return sim::launch(cfg.grid, cfg.block, cfg.smem_bytes, +body, &ctx);
#else
  static_assert(detail::always_false_v<Params...>,
                "deepshock::launch runs kernels only under nvcc or in the simulator (define DEEPSHOCK_SIM=1 "
                "or link deepshock::sim).");
  ((void)args, ...);
  (void)cfg;
  return Status::unsupported("no kernel backend");
#endif
}

#if DEEPSHOCK_HAS_KERNELS
template <class T>
DEEPSHOCK_DEVICE T* dynamic_smem() {
#if DEEPSHOCK_SIM
  return reinterpret_cast<T*>(sim::detail::current_thread().block->dyn_smem);
#else
  extern __shared__ __align__(16) unsigned char deepshock_dynamic_smem_[];
  return reinterpret_cast<T*>(deepshock_dynamic_smem_);
#endif
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock
