// deepshock/platform/runtime.hpp — a small runtime facade: device memory, copies, streams, events.
//
// Two implementations behind one API: the CUDA runtime (nvcc or plain host builds) and the
// simulator (DEEPSHOCK_SIM), where "device" memory is host memory, streams are synchronous and
// events read a steady clock. Every call returns a Status; nothing throws. RAII owners
// (`DeviceBuffer`, `Stream`, `Event`) release their resource in the destructor.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "deepshock/core/status.hpp"
#include "deepshock/platform/cuda.hpp"

namespace deepshock::rt {

#if DEEPSHOCK_SIM
/// Simulator streams execute synchronously; the handle only identifies the stream.
struct SimStream {
  int id = 0;
};
using stream_t = SimStream*;
struct SimEvent {
  std::chrono::steady_clock::time_point t{};
  bool recorded = false;
};
using event_t = SimEvent*;
#else
using stream_t = cudaStream_t;
using event_t = cudaEvent_t;
#endif

/// "cuda" or "simulator".
inline const char* backend_name() { return DEEPSHOCK_SIM ? "simulator" : "cuda"; }

#if !DEEPSHOCK_SIM
/// Converts a CUDA error into a Status naming the call.
/// Converts a CUDA error into a Status naming the call, and clears the runtime's last-error
/// state so that a handled failure is not reported again by the next unrelated call.
inline Status from_cuda(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return Status::success();
  (void)cudaGetLastError();
  return Status::runtime_error(std::string(call) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}
#endif

/// Number of usable devices. A machine without a driver or GPU reports 0 and ok (CUDA returns
/// cudaErrorInsufficientDriver or cudaErrorNoDevice there; both mean "none"). The simulator
/// reports one device.
inline Status device_count(int& count) {
#if DEEPSHOCK_SIM
  count = 1;
  return Status::success();
#else
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
    (void)cudaGetLastError();
    count = 0;
    return Status::success();
  }
  count = e == cudaSuccess ? n : 0;
  return from_cuda(e, "cudaGetDeviceCount");
#endif
}

/// True when kernels can run: a CUDA device is present, or this is the simulator.
inline bool device_available() {
  int n = 0;
  return device_count(n).ok() && n > 0;
}

/// A description of device 0, e.g. "NVIDIA H200 (sm_90, 132 SMs)" or "deepshock SIMT simulator".
inline std::string device_name() {
#if DEEPSHOCK_SIM
  return "deepshock SIMT simulator (CPU)";
#else
  if (!device_available()) return "none";
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return "unknown";
  return std::string(p.name) + " (sm_" + std::to_string(p.major * 10 + p.minor) + ", " + std::to_string(p.multiProcessorCount) + " SMs)";
#endif
}

/// The current device's compute capability as 10 * major + minor (90 for Hopper, 89 for Ada); 0
/// without a device. The simulator models sm_90a: 90.
inline int compute_capability() {
#if DEEPSHOCK_SIM
  return 90;
#else
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return 10 * major + minor;
#endif
}

inline Status malloc_device(void** ptr, std::size_t bytes) {
  if (!ptr) return Status::invalid_argument("ptr", "must not be null");
  *ptr = nullptr;
  if (bytes == 0) return Status::success();
  if (bytes > (std::size_t(1) << 56)) return Status::resource_exhausted("bytes", std::to_string(bytes) + " bytes is beyond any device");
#if DEEPSHOCK_SIM
  return sim::detail::allocate_device(ptr, bytes);  // guarded: see sim/device_memory.hpp
#else
  return from_cuda(cudaMalloc(ptr, bytes), "cudaMalloc");
#endif
}

/// Frees memory from malloc_device (null: nothing). The simulator reports here a write past
/// the end that no launch has reported yet.
inline Status free_device(void* ptr) {
#if DEEPSHOCK_SIM
  return sim::detail::free_device(ptr);
#else
  return ptr ? from_cuda(cudaFree(ptr), "cudaFree") : Status::success();
#endif
}

enum class Copy { host_to_device, device_to_host, device_to_device, host_to_host };

inline Status memcpy_async(void* dst, const void* src, std::size_t bytes, Copy kind, stream_t stream) {
  if (bytes == 0) return Status::success();
  if (!dst) return Status::invalid_argument("dst", "must not be null");
  if (!src) return Status::invalid_argument("src", "must not be null");
#if DEEPSHOCK_SIM
  (void)kind;
  (void)stream;
  std::memmove(dst, src, bytes);
  return Status::success();
#else
  const cudaMemcpyKind k = kind == Copy::host_to_device     ? cudaMemcpyHostToDevice
                           : kind == Copy::device_to_host   ? cudaMemcpyDeviceToHost
                           : kind == Copy::device_to_device ? cudaMemcpyDeviceToDevice
                                                            : cudaMemcpyHostToHost;
  return from_cuda(cudaMemcpyAsync(dst, src, bytes, k, stream), "cudaMemcpyAsync");
#endif
}

inline Status memset_async(void* dst, int value, std::size_t bytes, stream_t stream) {
  if (bytes == 0) return Status::success();
  if (!dst) return Status::invalid_argument("dst", "must not be null");
#if DEEPSHOCK_SIM
  (void)stream;
  std::memset(dst, value, bytes);
  return Status::success();
#else
  return from_cuda(cudaMemsetAsync(dst, value, bytes, stream), "cudaMemsetAsync");
#endif
}

inline Status stream_synchronize(stream_t stream) {
#if DEEPSHOCK_SIM
  (void)stream;
  return Status::success();
#else
  return from_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
#endif
}

/// Whether `stream` is being captured into a CUDA graph (always false in the simulator).
/// Entry points that must synchronise the host use it to fail clearly instead of invalidating
/// the capture.
inline Status stream_is_capturing(stream_t stream, bool& capturing) {
  capturing = false;
#if DEEPSHOCK_SIM
  (void)stream;
  return Status::success();
#else
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  DEEPSHOCK_RETURN_IF_ERROR(from_cuda(cudaStreamIsCapturing(stream, &st), "cudaStreamIsCapturing"));
  capturing = st != cudaStreamCaptureStatusNone;
  return Status::success();
#endif
}

inline Status device_synchronize() {
#if DEEPSHOCK_SIM
  return Status::success();
#else
  return from_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
#endif
}

/// Owning stream. A default-constructed Stream is the default (null) stream until create().
class Stream {
 public:
  Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    reset();
    s_ = std::exchange(o.s_, nullptr);
    return *this;
  }
  ~Stream() { reset(); }
  Status create() {
    reset();
#if DEEPSHOCK_SIM
    s_ = new SimStream{};
    return Status::success();
#else
    return from_cuda(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
#endif
  }
  stream_t get() const noexcept { return s_; }
  Status synchronize() const { return stream_synchronize(s_); }

 private:
  void reset() {
    if (!s_) return;
#if DEEPSHOCK_SIM
    delete s_;
#else
    (void)cudaStreamDestroy(s_);
#endif
    s_ = nullptr;
  }
  stream_t s_ = nullptr;
};

/// An instantiated CUDA graph: capture(stream, fn) records the work fn() enqueues on `stream`
/// (stream capture, thread-local mode) and instantiates it; launch(stream) replays it with the
/// pointers it was captured with. The simulator has no graphs: capture() and launch() return
/// unsupported there, and callers run the work directly.
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&& o) noexcept : exec_(std::exchange(o.exec_, nullptr)) {}
  Graph& operator=(Graph&& o) noexcept {
    reset();
    exec_ = std::exchange(o.exec_, nullptr);
    return *this;
  }
  ~Graph() { reset(); }

  bool ready() const noexcept { return exec_ != nullptr; }

  template <class F>
  Status capture(stream_t stream, F&& fn) {
    reset();
#if DEEPSHOCK_SIM
    (void)stream;
    (void)fn;
    return Status::unsupported("CUDA graphs: the simulator has none (run the work directly)");
#else
    DEEPSHOCK_RETURN_IF_ERROR(from_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture"));
    const Status recorded = fn();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &graph);  // ends the capture whatever fn() returned
    const Status st = [&]() -> Status {
      DEEPSHOCK_RETURN_IF_ERROR(recorded);
      DEEPSHOCK_RETURN_IF_ERROR(from_cuda(ended, "cudaStreamEndCapture"));
      return from_cuda(cudaGraphInstantiate(&exec_, graph, 0), "cudaGraphInstantiate");
    }();
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (!st.ok()) exec_ = nullptr;
    return st;
#endif
  }

  Status launch(stream_t stream) const {
#if DEEPSHOCK_SIM
    (void)stream;
    return Status::unsupported("CUDA graphs: the simulator has none");
#else
    if (exec_ == nullptr) return Status::invalid_argument("graph", "not captured");
    return from_cuda(cudaGraphLaunch(exec_, stream), "cudaGraphLaunch");
#endif
  }

  void reset() noexcept {
#if !DEEPSHOCK_SIM
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
#endif
    exec_ = nullptr;
  }

 private:
#if DEEPSHOCK_SIM
  void* exec_ = nullptr;
#else
  cudaGraphExec_t exec_ = nullptr;
#endif
};

/// Owning timing event.
class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { reset(); }
  Status create() {
    reset();
#if DEEPSHOCK_SIM
    e_ = new SimEvent{};
    return Status::success();
#else
    return from_cuda(cudaEventCreate(&e_), "cudaEventCreate");
#endif
  }
  Status record(stream_t stream) {
    if (!e_) return Status::invalid_argument("event", "create() was not called");
#if DEEPSHOCK_SIM
    (void)stream;
    e_->t = std::chrono::steady_clock::now();
    e_->recorded = true;
    return Status::success();
#else
    return from_cuda(cudaEventRecord(e_, stream), "cudaEventRecord");
#endif
  }
  Status synchronize() const {
#if DEEPSHOCK_SIM
    return Status::success();
#else
    return from_cuda(cudaEventSynchronize(e_), "cudaEventSynchronize");
#endif
  }
  /// Milliseconds between two recorded events.
  static Status elapsed_ms(const Event& start, const Event& stop, float& ms) {
    if (!start.e_) return Status::invalid_argument("start", "create() was not called");
    if (!stop.e_) return Status::invalid_argument("stop", "create() was not called");
#if DEEPSHOCK_SIM
    if (!start.e_->recorded) return Status::invalid_argument("start", "was not recorded");
    if (!stop.e_->recorded) return Status::invalid_argument("stop", "was not recorded");
    ms = std::chrono::duration<float, std::milli>(stop.e_->t - start.e_->t).count();
    return Status::success();
#else
    return from_cuda(cudaEventElapsedTime(&ms, start.e_, stop.e_), "cudaEventElapsedTime");
#endif
  }

 private:
  void reset() {
    if (!e_) return;
#if DEEPSHOCK_SIM
    delete e_;
#else
    (void)cudaEventDestroy(e_);
#endif
    e_ = nullptr;
  }
  event_t e_ = nullptr;
};

/// Owning device array of `T`.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    reset();
    p_ = std::exchange(o.p_, nullptr);
    n_ = std::exchange(o.n_, 0);
    return *this;
  }
  ~DeviceBuffer() { reset(); }

  /// Allocates room for `count` elements (contents undefined).
  Status allocate(std::size_t count) {
    reset();
    if (count > (std::size_t(1) << 56) / sizeof(T))
      return Status::resource_exhausted("count", std::to_string(count) + " elements is beyond any device");
    void* p = nullptr;
    DEEPSHOCK_RETURN_IF_ERROR(malloc_device(&p, count * sizeof(T)));
    p_ = static_cast<T*>(p);
    n_ = count;
    return Status::success();
  }
  Status copy_from_host(const T* src, std::size_t count, stream_t stream = nullptr) {
    if (count > n_) return Status::out_of_range("count", "exceeds the buffer size " + std::to_string(n_));
    return memcpy_async(p_, src, count * sizeof(T), Copy::host_to_device, stream);
  }
  Status copy_to_host(T* dst, std::size_t count, stream_t stream = nullptr) const {
    if (count > n_) return Status::out_of_range("count", "exceeds the buffer size " + std::to_string(n_));
    return memcpy_async(dst, p_, count * sizeof(T), Copy::device_to_host, stream);
  }
  /// Fills every byte with `byte` (0xFF poisons floats with NaN).
  Status fill_bytes(int byte, stream_t stream = nullptr) { return memset_async(p_, byte, n_ * sizeof(T), stream); }

  T* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  std::size_t bytes() const noexcept { return n_ * sizeof(T); }

 private:
  void reset() {
    if (p_) (void)free_device(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace deepshock::rt
