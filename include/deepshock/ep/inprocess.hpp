// deepshock/ep/inprocess.hpp — an in-process transport (ep/transport.hpp): threads play the
// ranks of an expert-parallel group and exchange through host memory.
//
//   ep::InProcessGroup group(4);                       // 4 ranks; waits bounded by group.timeout()
//   std::thread([&] { auto t = group.transport(2); ... ep::run_host_layer(..., t, ...); });
//
// It lets the whole EP path — counts, deduplicated dispatch, the experts on the received rows,
// the return and the ordered combine — run and be tested without a GPU or NCCL, under TSan, and
// with the simulator (whose "device" memory is host memory, so each thread may own a simulated
// device's buffers). Parts are copied with memcpy, or with the group's copy function: with
// ep::device_copy (ep/device_ep.hpp) the ranks may be threads sharing one GPU.
//
// An exchange: every rank posts its Exchange and waits until all have (barrier 1); each then
// copies its parts out of its peers' send buffers (a part's size must be what the receiver
// expects); and all wait until every rank has copied (barrier 2), after which send buffers may
// be reused — also when a copy failed, so no rank frees what another still reads. Barrier 1 is
// bounded (the group's timeout): a rank that never arrives makes the others return
// deadline_exceeded, naming how many arrived; barrier 2 needs no bound (past barrier 1 every
// rank only copies). abort(why) from any rank — or a
// malformed exchange — fails the group: every rank's current and later exchanges return the
// error, naming the rank it came from. A failed group stays failed (make a new one).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/ep/transport.hpp"

namespace deepshock::ep {

class InProcessGroup;

/// Rank `rank`'s handle on an InProcessGroup (cheap to copy; the group must outlive it).
class InProcessTransport {
 public:
  static constexpr bool kStreamOrdered = false;  ///< exchanges copy at once: device work must be complete
  InProcessTransport(InProcessGroup& g, int rank) : group_(&g), rank_(rank) {}
  int rank() const noexcept { return rank_; }
  int size() const noexcept;
  /// Whether parts are copied by a copy function (ep::device_copy) rather than memcpy.
  bool copies_device_memory() const noexcept;
  Status exchange(const Exchange& x);
  void abort(const Status& why);
  /// Bytes this rank sent to / received from other ranks so far (its own part excluded).
  std::uint64_t bytes_sent() const noexcept { return sent_; }
  std::uint64_t bytes_received() const noexcept { return received_; }

 private:
  InProcessGroup* group_;
  int rank_;
  std::uint64_t sent_ = 0, received_ = 0;
};

class InProcessGroup {
 public:
  /// Copies `bytes` from src to dst (both may be device memory for a device copy function).
  using CopyFn = Status (*)(void* dst, const void* src, std::size_t bytes);

  explicit InProcessGroup(int ranks, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000), CopyFn copy = nullptr)
      : size_(ranks), timeout_(timeout), copy_(copy), posted_(static_cast<std::size_t>(ranks > 0 ? ranks : 0), nullptr) {
    if (ranks < 1) error_.assign(Status::invalid_argument("ranks", "must be >= 1, got " + std::to_string(ranks)));
  }
  InProcessGroup(const InProcessGroup&) = delete;
  InProcessGroup& operator=(const InProcessGroup&) = delete;

  int size() const noexcept { return size_; }
  std::chrono::milliseconds timeout() const noexcept { return timeout_; }
  /// OK until an abort, a timeout or a malformed exchange fails the group.
  Status status() const {
    std::lock_guard<std::mutex> lk(mu_);
    return error_;
  }
  InProcessTransport transport(int rank) { return InProcessTransport(*this, rank); }
  /// The copy function (null: memcpy, host memory only).
  CopyFn copy_function() const noexcept { return copy_; }

 private:
  friend class InProcessTransport;

  /// Fails the group with `why` (the first failure wins) and wakes every waiting rank.
  void fail(std::unique_lock<std::mutex>&, int rank, const Status& why) {
    if (error_.ok())
      error_.assign(Status(why.ok() ? StatusCode::internal : why.code(), "ep rank " + std::to_string(rank) + ": " + why.message()));
    cv_.notify_all();
  }

  /// Barrier 1: waits until every rank has posted (success), or the group fails first, or the
  /// timeout passes (which fails the group). Once every rank has arrived the barrier succeeds
  /// for all of them, even if the group fails afterwards: they all go on to copy, so all meet
  /// at barrier 2.
  Status all_posted(std::unique_lock<std::mutex>& lk, int rank) {
    if (!error_.ok()) return error_;
    const std::uint64_t gen = generation_;
    if (++arrived_ == size_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return Status::success();
    }
    const bool done = cv_.wait_for(lk, timeout_, [&] { return generation_ != gen || !error_.ok(); });
    if (generation_ != gen) return Status::success();
    if (!done)
      fail(lk, rank,
           Status::deadline_exceeded("waited " + std::to_string(timeout_.count()) + " ms at an exchange with " + std::to_string(arrived_) +
                                     " of " + std::to_string(size_) + " ranks arrived"));
    return error_;
  }

  /// Barrier 2: waits until every rank has finished copying out of its peers' buffers, failed
  /// or not, so that no rank returns (and frees its send buffers) while another still reads
  /// them. No timeout: every rank past barrier 1 only copies, which ends.
  void all_copied(std::unique_lock<std::mutex>& lk) {
    const std::uint64_t gen = copy_generation_;
    if (++copied_ == size_) {
      copied_ = 0;
      ++copy_generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lk, [&] { return copy_generation_ != gen; });
  }

  Status exchange(int rank, const Exchange& x, std::uint64_t& sent, std::uint64_t& received) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!error_.ok()) return error_;
    if (rank < 0 || rank >= size_) {
      const Status st = Status::invalid_argument("rank", "must be in [0, " + std::to_string(size_) + ")");
      fail(lk, rank, st);
      return st;
    }
    if (const Status st = x.validate(size_); !st.ok()) {
      fail(lk, rank, st);
      return st;
    }
    posted_[static_cast<std::size_t>(rank)] = &x;
    DEEPSHOCK_RETURN_IF_ERROR(all_posted(lk, rank));
    // Every rank has posted; the posts stay until barrier 2, so they can be read unlocked.
    std::vector<const Exchange*> peers(posted_);
    lk.unlock();
    const std::size_t me = static_cast<std::size_t>(rank);
    Status bad;
    for (std::size_t p = 0; p < peers.size() && bad.ok(); ++p) {
      const std::size_t bytes = peers[p]->send_bytes[me];
      if (bytes != x.recv_bytes[p]) {
        bad.assign(Status::invalid_argument("exchange.recv_bytes", "rank " + std::to_string(rank) + " expects " +
                                                                       std::to_string(x.recv_bytes[p]) + " bytes from rank " +
                                                                       std::to_string(p) + ", which sends " + std::to_string(bytes)));
        break;
      }
      if (bytes > 0) {
        if (copy_ == nullptr) std::memcpy(x.recv[p], peers[p]->send[me], bytes);
        else if (const Status c = copy_(x.recv[p], peers[p]->send[me], bytes); !c.ok()) bad.assign(c);
      }
      if (p != me) {
        received += bytes;
        sent += x.send_bytes[p];
      }
    }
    lk.lock();
    if (!bad.ok()) fail(lk, rank, bad);
    all_copied(lk);
    return error_;
  }

  int size_;
  std::chrono::milliseconds timeout_;
  CopyFn copy_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<const Exchange*> posted_;
  int arrived_ = 0, copied_ = 0;
  std::uint64_t generation_ = 0, copy_generation_ = 0;
  Status error_;
};

inline int InProcessTransport::size() const noexcept { return group_->size(); }
inline bool InProcessTransport::copies_device_memory() const noexcept { return group_->copy_function() != nullptr; }
inline Status InProcessTransport::exchange(const Exchange& x) { return group_->exchange(rank_, x, sent_, received_); }
inline void InProcessTransport::abort(const Status& why) {
  std::unique_lock<std::mutex> lk(group_->mu_);
  group_->fail(lk, rank_, why);
}

static_assert(Transport<InProcessTransport>);

}  // namespace deepshock::ep
