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
//
// Programmatic dependent launch (LaunchConfig::dependent, Hopper and newer): the kernel may be
// scheduled while the previous kernel in the stream is still running, so that its launch and
// block start-up hide behind that kernel's tail instead of following its end. Such a kernel
// must call `deepshock::pdl::wait()` in every thread before it reads or writes any memory that
// earlier work in the stream writes or reads; after the wait, all earlier work has finished and
// its writes are visible. A kernel calls `deepshock::pdl::launch_dependents()` to let the next
// dependent kernel be scheduled before it ends (without it, each block's exit counts). Both are
// no-ops where the launch was an ordinary one, in builds for architectures before sm_90 and in
// the simulator (which runs kernels one after the other anyway). `launch` sets the launch
// attribute only where it is safe: a device of compute capability 9.0 or newer running code of
// the kernel compiled for compute_90 or newer — code JIT-compiled from older PTX has no wait
// instruction in it, so such a kernel gets an ordinary launch. Where a kernel that reads its
// predecessor's results calls pdl::wait() first, the results are the same as with ordinary
// launches; only the gaps between kernels shrink.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
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
  /// Programmatic dependent launch where supported (see the file comment): the kernel must call
  /// pdl::wait() before touching memory that earlier work in the stream uses.
  bool dependent = false;
};

namespace detail {
template <class...>
inline constexpr bool always_false_v = false;
}  // namespace detail

#if DEEPSHOCK_CUDA
namespace detail {
/// What `launch` needs to know of a kernel on a device, asked of the runtime once per
/// (kernel, device) and remembered, so that a steady stream of launches costs one cudaGetDevice
/// and a map lookup (host time matters at decode).
struct KernelEntry {
  std::size_t static_bytes = 0;
  std::size_t opted = 0;      ///< largest dynamic shared memory size opted into so far
  std::size_t max_block = 0;  ///< the device's opt-in maximum of shared memory per block
  bool dependent_ok = false;  ///< programmatic dependent launch is safe (see the file comment)
  int wave = 0;               ///< resident blocks on the whole device (wave_blocks), 0 until asked
};

/// Runs `fn(KernelEntry&)` on the entry of (kernel, current device) under the cache's lock.
template <class Fn>
Status with_kernel_entry(const void* kernel, Fn&& fn) {
  struct Key {
    const void* kernel;
    int device;
    bool operator==(const Key& o) const { return kernel == o.kernel && device == o.device; }
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const { return std::hash<const void*>()(k.kernel) ^ static_cast<std::size_t>(k.device); }
  };
  static std::mutex m;
  static std::unordered_map<Key, KernelEntry, KeyHash> cache;
  int device = 0;
  DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(cudaGetDevice(&device), "cudaGetDevice"));
  std::lock_guard<std::mutex> lock(m);
  const Key key{kernel, device};
  auto it = cache.find(key);
  if (it == cache.end()) {
    cudaFuncAttributes attr{};
    DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(cudaFuncGetAttributes(&attr, kernel), "cudaFuncGetAttributes"));
    int max_block = 0, major = 0;
    DEEPSHOCK_RETURN_IF_ERROR(
        rt::from_cuda(cudaDeviceGetAttribute(&max_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "cudaDeviceGetAttribute"));
    DEEPSHOCK_RETURN_IF_ERROR(
        rt::from_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute"));
    // ptxVersion: the virtual architecture the loaded code was compiled for (90 for sm_90a SASS,
    // 80 for code JIT-compiled from compute_80 PTX, whose pdl::wait() is compiled out).
    const bool dependent_ok = major >= 9 && attr.ptxVersion >= 90;
    it = cache.emplace(key, KernelEntry{attr.sharedSizeBytes, 0, static_cast<std::size_t>(max_block), dependent_ok, 0}).first;
  }
  return fn(it->second);
}

/// Whether a launch of `kernel` on the current device with LaunchConfig::dependent really is a
/// programmatic dependent launch (otherwise it is an ordinary one).
inline Status dependent_launch_supported(const void* kernel, bool& supported) {
  supported = false;
  return with_kernel_entry(kernel, [&](KernelEntry& e) {
    supported = e.dependent_ok;
    return Status::success();
  });
}

/// Prepares a launch of `kernel` with `dynamic_bytes` of dynamic shared memory: opts the kernel
/// into that much when static + dynamic exceeds 48 KiB (once per size, remembered); more than
/// the device's opt-in maximum per block is an invalid_argument naming smem_bytes (e.g. Hopper
/// tiles on an sm_89 GPU). `dependent` (in: asked for; out: granted) stays true only where a
/// programmatic dependent launch is safe.
inline Status prepare_launch(const void* kernel, std::size_t dynamic_bytes, bool& dependent) {
  if (dynamic_bytes == 0 && !dependent) return Status::success();
  return with_kernel_entry(kernel, [&](KernelEntry& e) {
    dependent = dependent && e.dependent_ok;
    if (dynamic_bytes == 0 || e.static_bytes + dynamic_bytes <= 48 * 1024 || dynamic_bytes <= e.opted) return Status::success();
    if (e.static_bytes + dynamic_bytes > e.max_block)
      return Status::invalid_argument("smem_bytes",
                                      std::to_string(dynamic_bytes) + " bytes of dynamic (+ " + std::to_string(e.static_bytes) +
                                          " static) shared memory exceed this device's maximum of " + std::to_string(e.max_block) +
                                          " per block (a tile tuning for another architecture?)");
    DEEPSHOCK_RETURN_IF_ERROR(
        rt::from_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(dynamic_bytes)),
                      "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)"));
    e.opted = dynamic_bytes;
    return Status::success();
  });
}

/// One wave of `kernel` on the current device: how many blocks of `threads` threads and
/// `dynamic_bytes` of dynamic shared memory are resident at once (blocks per SM x SMs), asked
/// of the runtime once per (kernel, device) — a kernel is launched with one block shape here —
/// after the shared-memory opt-in. None fitting is a runtime_error.
inline Status wave_blocks(const void* kernel, int threads, std::size_t dynamic_bytes, int& blocks) {
  blocks = 0;
  bool dependent = false;
  DEEPSHOCK_RETURN_IF_ERROR(prepare_launch(kernel, dynamic_bytes, dependent));  // the query needs the opt-in
  return with_kernel_entry(kernel, [&](KernelEntry& e) {
    if (e.wave == 0) {
      int device = 0, per_sm = 0, sms = 0;
      DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(cudaGetDevice(&device), "cudaGetDevice"));
      DEEPSHOCK_RETURN_IF_ERROR(rt::from_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, dynamic_bytes),
                                              "cudaOccupancyMaxActiveBlocksPerMultiprocessor"));
      DEEPSHOCK_RETURN_IF_ERROR(
          rt::from_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute"));
      if (per_sm < 1)
        return Status::runtime_error("the occupancy query found no room for one block of " + std::to_string(threads) + " threads and " +
                                     std::to_string(dynamic_bytes) + " bytes of dynamic shared memory");
      e.wave = per_sm * sms;
    }
    blocks = e.wave;
    return Status::success();
  });
}
}  // namespace detail
#endif

/// Launches `kernel` with `cfg`. Each argument converts implicitly to its parameter's type, as
/// with `<<<>>>` (the parameter types come from the kernel alone, never from the arguments).
template <class... Params>
Status launch(void (*kernel)(Params...), const LaunchConfig& cfg, std::type_identity_t<Params>... args) {
  if (kernel == nullptr) return Status::invalid_argument("kernel", "must not be null");
#if DEEPSHOCK_CUDA
  bool dependent = cfg.dependent;
  DEEPSHOCK_RETURN_IF_ERROR(detail::prepare_launch(reinterpret_cast<const void*>(kernel), cfg.smem_bytes, dependent));
  if (!dependent) {
    kernel<<<cfg.grid, cfg.block, cfg.smem_bytes, cfg.stream>>>(args...);
    return rt::from_cuda(cudaGetLastError(), "kernel launch");
  }
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t lc{};
  lc.gridDim = cfg.grid;
  lc.blockDim = cfg.block;
  lc.dynamicSmemBytes = cfg.smem_bytes;
  lc.stream = cfg.stream;
  lc.attrs = attr;
  lc.numAttrs = 1;
  const cudaError_t e = cudaLaunchKernelEx(&lc, kernel, args...);
  if (e != cudaSuccess) (void)cudaGetLastError();  // clear it: the next launch checks cudaGetLastError
  return rt::from_cuda(e, "kernel launch (programmatic dependent)");
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
/// Device side of programmatic dependent launch (see the file comment).
namespace pdl {
/// Blocks until all earlier work in the stream has finished and its writes are visible. Call it
/// in every thread of a kernel launched with LaunchConfig::dependent before touching memory that
/// earlier work uses. A no-op after an ordinary launch.
DEEPSHOCK_DEVICE void wait() {
#if DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
/// Lets the next kernel in the stream, if launched with LaunchConfig::dependent, be scheduled
/// before this one ends (it still waits for this kernel's end in its pdl::wait()).
DEEPSHOCK_DEVICE void launch_dependents() {
#if DEEPSHOCK_DEVICE_PASS && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}
}  // namespace pdl

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
