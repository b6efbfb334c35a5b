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
#include <mutex>
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
/// Opts the kernel into more than 48 KiB of shared memory when static + dynamic needs it.
/// Static shared memory of `kernel`, asked of the runtime once per kernel and cached.
inline Status static_smem_bytes(const void* kernel, std::size_t& bytes) {
  static std::mutex m;
  static std::unordered_map<const void*, std::size_t> cache;
  std::lock_guard<std::mutex> lock(m);
  if (auto it = cache.find(kernel); it != cache.end()) {
    bytes = it->second;
    return Status::success();
  }
  cudaFuncAttributes attr{};
  DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(cudaFuncGetAttributes(&attr, kernel), "cudaFuncGetAttributes"));
  bytes = cache[kernel] = attr.sharedSizeBytes;
  return Status::success();
}

template <class... Params>
Status prepare_smem(void (*kernel)(Params...), std::size_t dynamic_bytes) {
  if (dynamic_bytes == 0) return Status::success();
  std::size_t static_bytes = 0;
  DEEPSHOCK_RETURN_IF_ERROR(static_smem_bytes(reinterpret_cast<const void*>(kernel), static_bytes));
  if (static_bytes + dynamic_bytes <= 48 * 1024) return Status::success();
  return rt::from_cuda(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(dynamic_bytes)),
                       "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
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
