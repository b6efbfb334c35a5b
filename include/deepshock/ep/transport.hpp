// deepshock/ep/transport.hpp — what expert parallelism needs from a communication engine.
//
// Expert parallelism (EP) spreads a layer's experts over `size()` ranks; each step moves token
// rows to the ranks that hold their experts and expert outputs back (ep/host_ep.hpp). Both moves
// are one collective: every rank sends a buffer of its own size to every peer (itself included)
// and receives one from every peer — an all-to-all with per-peer sizes ("all-to-all-v"). The
// sizes are known to both sides beforehand (EP exchanges the counts first, with the same call).
//
//   struct MyTransport {
//     int rank() const;   int size() const;
//     // Send send[p] (send_bytes[p] bytes) to every peer p and receive recv[p] (recv_bytes[p]
//     // bytes) from it. Collective: every rank calls it, in the same order. Zero-byte parts
//     // still take part (a rank that receives nothing must not skip the call: that is how
//     // engines deadlock). Returns once this rank's receives are complete and its send buffers
//     // may be reused; an error on any rank makes every rank return an error (never a hang).
//     Status exchange(const Exchange& x);
//     // This rank failed outside an exchange: make every rank's current and later exchanges
//     // fail with `why` instead of waiting for it.
//     void abort(const Status& why);
//   };
//
// Transports: ep::InProcessGroup (ep/inprocess.hpp: threads play the ranks, host memory — the
// simulator's device memory is host memory too — bounded waits), and NCCL where it is installed
// (grouped ncclSend / ncclRecv per peer on a stream). An NVSHMEM / DeepEP-style transport
// (one-sided puts from the kernels, device-side counts) fits the same call: `stream` says where
// the exchange is ordered; a host transport ignores it.
#pragma once

#include <concepts>
#include <cstddef>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/platform/runtime.hpp"

namespace deepshock::ep {

/// One all-to-all-v: per peer p, what goes to p and what comes from p.
struct Exchange {
  std::vector<const void*> send;        ///< [size] this rank's buffer for peer p (may be null when send_bytes[p] == 0)
  std::vector<std::size_t> send_bytes;  ///< [size]
  std::vector<void*> recv;              ///< [size] where peer p's part lands
  std::vector<std::size_t> recv_bytes;  ///< [size] must equal what p sends here
  rt::stream_t stream = nullptr;        ///< device transports order the exchange on it

  /// An exchange among `peers` ranks with nothing in it yet.
  explicit Exchange(int peers = 0)
      : send(static_cast<std::size_t>(peers), nullptr),
        send_bytes(static_cast<std::size_t>(peers), 0),
        recv(static_cast<std::size_t>(peers), nullptr),
        recv_bytes(static_cast<std::size_t>(peers), 0) {}

  /// Peer p's parts: `send_count` elements of `send` go to p, `recv_count` elements from p land
  /// in `recv`.
  template <class U>
  void part(int p, const U* send, std::size_t send_count, U* recv, std::size_t recv_count) {
    const std::size_t i = static_cast<std::size_t>(p);
    this->send[i] = send;
    send_bytes[i] = send_count * sizeof(U);
    this->recv[i] = recv;
    recv_bytes[i] = recv_count * sizeof(U);
  }

  /// The shapes agree with `peers` and every non-empty part has a buffer.
  Status validate(int peers) const {
    const std::size_t n = static_cast<std::size_t>(peers);
    if (send.size() != n || send_bytes.size() != n || recv.size() != n || recv_bytes.size() != n)
      return Status::invalid_argument("exchange", "needs one send and one receive part per rank (" + std::to_string(peers) + ")");
    for (std::size_t p = 0; p < n; ++p) {
      if (send_bytes[p] > 0 && send[p] == nullptr)
        return Status::invalid_argument("exchange.send", "part " + std::to_string(p) + " has bytes but no buffer");
      if (recv_bytes[p] > 0 && recv[p] == nullptr)
        return Status::invalid_argument("exchange.recv", "part " + std::to_string(p) + " has bytes but no buffer");
    }
    return Status::success();
  }
};

template <class X>
concept Transport = requires(X& t, const X& ct, const Exchange& x, const Status& why) {
  { ct.rank() } -> std::convertible_to<int>;
  { ct.size() } -> std::convertible_to<int>;
  { t.exchange(x) } -> std::same_as<Status>;
  {t.abort(why)};
};

}  // namespace deepshock::ep
