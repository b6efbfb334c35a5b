// deepshock/core/config.hpp — compilation-mode detection and annotation macros.
//
// deepshock code is compiled in three modes (README, "Three ways the same code runs"):
//   * CUDA       — nvcc (device and host passes). DEEPSHOCK_CUDA is 1.
//   * Simulator  — the host compiler with DEEPSHOCK_SIM defined to 1 by the build (the
//                  deepshock::sim target does that). Kernels run on CPU fibers.
//   * Host       — the host compiler alone: policies, references and types only.
//
// Annotation macros used by library code:
//   DEEPSHOCK_HOST_DEVICE  a function callable on host and device (always inline).
//   DEEPSHOCK_DEVICE       a device function (inline on the host compiler).
//   DEEPSHOCK_KERNEL       a kernel entry point (__global__ under nvcc; a plain function
//                          in the simulator, launched through deepshock::launch).
//   DEEPSHOCK_FORCEINLINE  a strong inlining hint in every mode.
#pragma once

#if defined(__CUDACC__)
#define DEEPSHOCK_CUDA 1
#else
#define DEEPSHOCK_CUDA 0
#endif

#if defined(DEEPSHOCK_SIM) && DEEPSHOCK_SIM
#if DEEPSHOCK_CUDA
#error "deepshock: DEEPSHOCK_SIM selects the CPU simulator and needs a host compiler, not nvcc."
#endif
#undef DEEPSHOCK_SIM
#define DEEPSHOCK_SIM 1
#else
#undef DEEPSHOCK_SIM
#define DEEPSHOCK_SIM 0
#endif

// True where kernels can be compiled and launched: nvcc or the simulator. Device-only
// primitives (warp/block helpers, instruction wrappers) exist only then; a plain host build
// still includes every header and gets the host-side API.
#if DEEPSHOCK_CUDA || DEEPSHOCK_SIM
#define DEEPSHOCK_HAS_KERNELS 1
#else
#define DEEPSHOCK_HAS_KERNELS 0
#endif

// True while compiling device code (nvcc's device pass). Library code outside the
// instruction wrappers should not need it; kernel bodies must not use it (the simulator has no architecture to branch on).
#if defined(__CUDA_ARCH__)
#define DEEPSHOCK_DEVICE_PASS 1
#else
#define DEEPSHOCK_DEVICE_PASS 0
#endif

#if DEEPSHOCK_CUDA
#define DEEPSHOCK_HOST_DEVICE __host__ __device__ inline
#define DEEPSHOCK_DEVICE __device__ inline
#define DEEPSHOCK_KERNEL __global__
#define DEEPSHOCK_FORCEINLINE __forceinline__
#else
#define DEEPSHOCK_HOST_DEVICE inline
#define DEEPSHOCK_DEVICE inline
#define DEEPSHOCK_KERNEL
#define DEEPSHOCK_FORCEINLINE inline __attribute__((always_inline))
#endif

/// Full unrolling hint for a loop with a compile-time trip count, and its opposite, a loop kept
/// rolled (to bound register pressure): nvcc only; g++ decides itself.
#if DEEPSHOCK_CUDA
#define DEEPSHOCK_UNROLL _Pragma("unroll")
#define DEEPSHOCK_NO_UNROLL _Pragma("unroll 1")
#else
#define DEEPSHOCK_UNROLL
#define DEEPSHOCK_NO_UNROLL
#endif

#define DEEPSHOCK_VERSION_MAJOR 0
#define DEEPSHOCK_VERSION_MINOR 1
#define DEEPSHOCK_VERSION_PATCH 0

namespace deepshock {
/// Width of a warp in every mode.
inline constexpr int kWarpSize = 32;
}  // namespace deepshock
