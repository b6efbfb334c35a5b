// deepshock/ep/placement.hpp — where the experts of an expert-parallel layer live.
//
// A layer has E logical experts (the router's ids). Rank r holds a list of physical experts —
// its weights, in list order — each a copy of one logical expert; a hot expert may have copies
// (replicas) on several ranks, and every logical expert needs at least one. The usual engines'
// maps follow from it: logical -> physical (`copies(e)`), and per rank a map [E] of local indices
// with -1 for the experts the rank does not hold (`local_map(r)`).
//
//   auto p = ep::Placement::contiguous(64, 3);   // ranks hold 22, 21, 21 experts
//   p.replicate(5, 2);                            // rank 2 also holds expert 5 (its local 21)
//
// Which copy serves an assignment: a fixed function of the token (copy (home + t) mod copies
// for token t of home rank `home`), so the split of a hot expert's load is deterministic and
// the results do not depend on it (every copy holds the same weights, and an expert's output
// row depends on its input row alone).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "deepshock/core/status.hpp"

namespace deepshock::ep {

/// A physical expert: the rank that holds it and its index in that rank's weights.
struct Copy {
  int rank = -1;
  int local = -1;
};

class Placement {
 public:
  Placement() = default;
  /// E experts over `ranks` ranks in contiguous ranges, the first E % ranks ranks one larger.
  static Placement contiguous(int experts, int ranks) {
    Placement p;
    p.experts_ = experts;
    p.held_.assign(static_cast<std::size_t>(ranks > 0 ? ranks : 0), {});
    p.copies_.assign(static_cast<std::size_t>(experts > 0 ? experts : 0), {});
    if (experts < 1 || ranks < 1) return p;
    const int base = experts / ranks, extra = experts % ranks;
    for (int r = 0, e = 0; r < ranks; ++r)
      for (int i = 0; i < base + (r < extra ? 1 : 0); ++i, ++e) p.add(e, r);
    return p;
  }
  /// An explicit placement: held[r] lists rank r's physical experts (logical ids, local order).
  static Placement from_lists(int experts, std::vector<std::vector<int>> held) {
    Placement p;
    p.experts_ = experts;
    p.held_.assign(held.size(), {});
    p.copies_.assign(static_cast<std::size_t>(experts > 0 ? experts : 0), {});
    for (std::size_t r = 0; r < held.size(); ++r)
      for (const int e : held[r]) {
        if (e < 0 || e >= experts) {
          p.bad_.assign(Status::invalid_argument("held", "rank " + std::to_string(r) + " lists expert " + std::to_string(e) +
                                                             ", outside [0, " + std::to_string(experts) + ")"));
          return p;
        }
        p.add(e, static_cast<int>(r));
      }
    return p;
  }

  /// Adds a copy of `expert` at the end of `rank`'s weights.
  Status replicate(int expert, int rank) {
    if (expert < 0 || expert >= experts_)
      return Status::invalid_argument("expert", "must be in [0, " + std::to_string(experts_) + "), got " + std::to_string(expert));
    if (rank < 0 || rank >= ranks()) return Status::invalid_argument("rank", "must be in [0, " + std::to_string(ranks()) + ")");
    if (local_index(rank, expert) >= 0)
      return Status::invalid_argument("rank", "already holds expert " + std::to_string(expert) + " (one copy per rank)");
    add(expert, rank);
    return Status::success();
  }

  /// Every expert has a copy, every rank holds at least one expert, no rank holds one twice.
  Status validate() const {
    DEEPSHOCK_RETURN_IF_ERROR(bad_);
    if (experts_ < 1) return Status::invalid_argument("experts", "must be >= 1, got " + std::to_string(experts_));
    if (ranks() < 1) return Status::invalid_argument("ranks", "must be >= 1");
    for (int e = 0; e < experts_; ++e) {
      const std::vector<Copy>& c = copies(e);
      if (c.empty()) return Status::invalid_argument("placement", "expert " + std::to_string(e) + " has no copy on any rank");
      for (std::size_t i = 0; i < c.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
          if (c[i].rank == c[j].rank)
            return Status::invalid_argument("placement",
                                            "rank " + std::to_string(c[i].rank) + " holds expert " + std::to_string(e) + " twice");
    }
    for (int r = 0; r < ranks(); ++r)
      if (held(r).empty()) return Status::invalid_argument("placement", "rank " + std::to_string(r) + " holds no expert");
    return Status::success();
  }

  int experts() const noexcept { return experts_; }
  int ranks() const noexcept { return static_cast<int>(held_.size()); }
  /// Rank r's physical experts (logical ids) in the order of its weights.
  const std::vector<int>& held(int rank) const { return held_[static_cast<std::size_t>(rank)]; }
  /// The copies of a logical expert, in the order they were added.
  const std::vector<Copy>& copies(int expert) const { return copies_[static_cast<std::size_t>(expert)]; }
  /// `expert`'s index in `rank`'s weights, or -1 when the rank does not hold it.
  int local_index(int rank, int expert) const {
    for (const Copy& c : copies(expert))
      if (c.rank == rank) return c.local;
    return -1;
  }
  /// [E]: local_index(rank, e) for every expert (-1: not held).
  std::vector<int> local_map(int rank) const {
    std::vector<int> m(static_cast<std::size_t>(experts_), -1);
    for (int e = 0; e < experts_; ++e) m[static_cast<std::size_t>(e)] = local_index(rank, e);
    return m;
  }
  /// The copy that serves token t of rank `home` routed to `expert`.
  Copy choose(int expert, int home, long long t) const {
    const std::vector<Copy>& c = copies(expert);
    return c[static_cast<std::size_t>((static_cast<long long>(home) + t) % static_cast<long long>(c.size()))];
  }

 private:
  void add(int expert, int rank) {
    std::vector<int>& h = held_[static_cast<std::size_t>(rank)];
    copies_[static_cast<std::size_t>(expert)].push_back({rank, static_cast<int>(h.size())});
    h.push_back(expert);
  }

  int experts_ = 0;
  std::vector<std::vector<int>> held_;
  std::vector<std::vector<Copy>> copies_;
  Status bad_;
};

}  // namespace deepshock::ep
