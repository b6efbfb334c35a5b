// deepshock/ep/nccl.hpp — ep::NcclTransport: the expert-parallel exchange (ep/transport.hpp) on
// NCCL, one communicator per rank (one GPU each).
//
//   std::vector<ncclComm_t> comms(n);                       // one process driving n GPUs:
//   ncclCommInitAll(comms.data(), n, nullptr);              // (or ncclCommInitRank per process)
//   // thread r: cudaSetDevice(r);
//   ep::NcclTransport t(comms[r]);
//   ep::DeviceEp<Layer, ep::NcclTransport> rank(t, placement, dims);
//
// An exchange is one NCCL group of point-to-point calls on the caller's stream: for every peer
// with bytes, ncclSend of this rank's part and ncclRecv of the peer's (bytes as ncclUint8), so
// the counts, the rows and the returned rows each cost one group — the all-to-all-v NCCL's
// grouped send / recv is built for (ncclAllToAll moves equal parts only). The rank's own part is
// a device-to-device copy on the same stream. Everything is ordered on the stream
// (kStreamOrdered): DeviceEp drains the stream only to read the counts.
//
// Failures: abort() calls ncclCommAbort on this rank's communicator, which ends its pending
// operations. NCCL's send / recv wait for their peers without a deadline, so a rank whose peer
// failed would wait forever in a plain stream synchronize; wait(stream) is the bounded wait: it
// polls the stream and ncclCommGetAsyncError and, on an error or after the transport's timeout,
// aborts the communicator and returns an error. ep::DeviceEp waits with it; wait with it after a
// step too. After an abort the communicator is gone: do not ncclCommDestroy it (aborted()).
// Otherwise the communicator stays the caller's.
//
// Available where <nccl.h> is (it ships with CUDA 13 toolkits; elsewhere the nvidia-nccl-cu13
// wheel or the distribution's libnccl-dev), in nvcc and plain host builds (it is host code),
// never in the simulator; link libnccl (the project's CMake target deepshock_nccl).
#pragma once

#include "deepshock/core/config.hpp"

#if !DEEPSHOCK_SIM && defined(__has_include)
#if __has_include(<nccl.h>)
#define DEEPSHOCK_HAS_NCCL 1
#endif
#endif

#if defined(DEEPSHOCK_HAS_NCCL)
#include <nccl.h>

#include <chrono>
#include <string>
#include <thread>

#include "deepshock/core/status.hpp"
#include "deepshock/ep/transport.hpp"
#include "deepshock/platform/runtime.hpp"

namespace deepshock::ep {

/// A Status from an NCCL result (`call` names the function).
inline Status from_nccl(ncclResult_t r, const char* call) {
  if (r == ncclSuccess) return Status::success();
  return Status::runtime_error(std::string(call) + ": " + ncclGetErrorString(r));
}

class NcclTransport {
 public:
  static constexpr bool kStreamOrdered = true;

  explicit NcclTransport(ncclComm_t comm, std::chrono::milliseconds timeout = std::chrono::milliseconds(60000))
      : comm_(comm), timeout_(timeout) {
    if (comm_ == nullptr) {
      status_.assign(Status::invalid_argument("comm", "must not be null"));
      return;
    }
    status_.assign(from_nccl(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank"));
    if (status_.ok()) status_.assign(from_nccl(ncclCommCount(comm_, &size_), "ncclCommCount"));
  }

  /// The constructor's queries of the communicator; exchange returns it too.
  const Status& status() const noexcept { return status_; }
  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }

  Status exchange(const Exchange& x) {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    DEEPSHOCK_RETURN_IF_ERROR(x.validate(size_));
    const std::size_t me = static_cast<std::size_t>(rank_);
    if (x.send_bytes[me] != x.recv_bytes[me])
      return Status::invalid_argument("exchange.recv_bytes", "this rank's own part: sends " + std::to_string(x.send_bytes[me]) +
                                                                 " bytes, expects " + std::to_string(x.recv_bytes[me]));
    DEEPSHOCK_RETURN_IF_ERROR(rt::memcpy_async(x.recv[me], x.send[me], x.send_bytes[me], rt::Copy::device_to_device, x.stream));
    DEEPSHOCK_RETURN_IF_ERROR(from_nccl(ncclGroupStart(), "ncclGroupStart"));
    Status st;
    for (int p = 0; p < size_ && st.ok(); ++p) {
      if (p == rank_) continue;
      const std::size_t pz = static_cast<std::size_t>(p);
      if (x.send_bytes[pz] > 0) st.assign(from_nccl(ncclSend(x.send[pz], x.send_bytes[pz], ncclUint8, p, comm_, x.stream), "ncclSend"));
      if (st.ok() && x.recv_bytes[pz] > 0)
        st.assign(from_nccl(ncclRecv(x.recv[pz], x.recv_bytes[pz], ncclUint8, p, comm_, x.stream), "ncclRecv"));
    }
    const Status end = from_nccl(ncclGroupEnd(), "ncclGroupEnd");
    return st.ok() ? end : st;
  }

  /// Waits until `stream` is idle, at most the timeout, watching the communicator for errors;
  /// aborts it (and returns an error) on an asynchronous NCCL error or the deadline.
  Status wait(rt::stream_t stream) {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream);
      if (q == cudaSuccess) return Status::success();
      if (q != cudaErrorNotReady) return rt::from_cuda(q, "cudaStreamQuery");
      ncclResult_t async = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
        const Status st = from_nccl(async, "ncclCommGetAsyncError");
        abort(st);
        return st;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        const Status st = Status::deadline_exceeded("ep::NcclTransport: the stream did not finish within " +
                                                    std::to_string(timeout_.count()) + " ms (a peer failed or is gone)");
        abort(st);
        return st;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  /// Whether abort() has ended the communicator (then it must not be destroyed again).
  bool aborted() const noexcept { return aborted_; }

  void abort(const Status& why) {
    if (comm_ != nullptr && !aborted_) {
      (void)ncclCommAbort(comm_);
      aborted_ = true;
      status_.assign(Status::unavailable("ep::NcclTransport: aborted (" + why.to_string() + ")"));
    }
  }

 private:
  ncclComm_t comm_ = nullptr;
  std::chrono::milliseconds timeout_;
  int rank_ = 0, size_ = 0;
  bool aborted_ = false;
  Status status_;
};

static_assert(Transport<NcclTransport>);

}  // namespace deepshock::ep
#endif  // DEEPSHOCK_HAS_NCCL
