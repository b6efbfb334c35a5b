// deepshock/ep/host_ep.hpp — one expert-parallel MoE layer step on the host executor, over any
// ep::Transport (ep/transport.hpp).
//
//   ep::InProcessGroup group(4);
//   // on each rank's thread r:
//   auto tr = group.transport(r);
//   ep::EpStats stats;
//   ds::Status st = ep::run_host_layer<Gate>(tr, placement, dims, params, {}, rank_weights, rank_inputs, rank_outputs, &stats);
//
// Each rank holds some of the tokens (its LayerInputs) and the experts `placement` gives it (its
// LayerWeights: the gate and the shared expert as on one rank; w1 / w3 / w2 hold its physical
// experts in placement.held(rank) order). A step, on every rank:
//   1. routing of its own tokens (the whole gate: ids stay logical, [0, E));
//   2. each assignment's copy (Placement::choose); per destination rank, the tokens with at
//      least one assignment there, ascending — a token row goes once per destination rank, not
//      once per expert;
//   3. exchange of the row counts, then of the rows and, per row, the k local expert indices
//      (-1: a slot served elsewhere);
//   4. the local experts on the received rows (moe::host expert_rows: fp32 outputs per (row,
//      slot), before the routing weight);
//   5. the outputs back to their home ranks, one fp32 row per assignment, in the order sent;
//   6. the shared expert on the home rank's tokens, and the combine there: y[t] = sum over slots
//      in slot order of w[t, j] o[t, j] + g_t s[t], rounded once.
// Every output row of an expert depends on its input row alone, and the combine sums in slot
// order on the home rank, exactly as the single-rank layer does, so y is bitwise what
// moe::host::run_layer gives for the same tokens on one rank — for any rank count, placement or
// replica choice. That is why the return path carries fp32 rows per assignment rather than a
// per-rank partial sum in T (DeepEP's combine): a partial sum reorders the fp32 additions. The
// bytes either way are in the README's EP section.
//
// Every rank must call every step, with or without tokens (a rank that receives nothing still
// takes part in each exchange). An error on one rank — bad arguments, a failed exchange —
// aborts the transport, so every rank's step returns an error instead of waiting for it.
// LoRA experts and capacity-limited gates (Switch) are not supported here yet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/ep/placement.hpp"
#include "deepshock/ep/transport.hpp"
#include "deepshock/moe/host_layer.hpp"

namespace deepshock::ep {

/// What one step moved and computed on a rank.
struct EpStats {
  std::uint64_t bytes_sent = 0, bytes_received = 0;  ///< to / from other ranks (own part excluded)
  long long rows_sent = 0, rows_received = 0;        ///< token rows to / from other ranks (one per token and destination)
  long long assignments = 0;                         ///< this rank's valid (token, slot) assignments
  long long assignments_remote = 0;                  ///< of them, served by another rank
  std::vector<long long> expert_load;                ///< [held experts]: assignments computed here, per physical expert
};

namespace detail {

/// The bytes of one exchange to and from other ranks.
inline void count_bytes(const Exchange& x, int me, EpStats& s) {
  for (std::size_t p = 0; p < x.send_bytes.size(); ++p)
    if (static_cast<int>(p) != me) {
      s.bytes_sent += x.send_bytes[p];
      s.bytes_received += x.recv_bytes[p];
    }
}

/// Steps 2-6 on checked arguments (ids: logical, [T, k]; null when T = 0).
template <class T, class ExpertT, Transport X>
Status ep_step(X& x, const Placement& pl, const moe::LayerDims& d, int k, const moe::LayerWeights<T, ExpertT>& w,
               const moe::LayerInputs<T>& in, const int* ids, const float* wts, const moe::LayerOutputs<T>& out, EpStats& st) {
  const int R = x.size(), me = x.rank(), E = pl.experts(), held = static_cast<int>(pl.held(me).size());
  const long long Tn = in.tokens, n = Tn * k;
  const std::size_t H = static_cast<std::size_t>(d.hidden), Kz = static_cast<std::size_t>(k);
  const std::size_t xs = static_cast<std::size_t>(in.x_stride == 0 ? d.hidden : in.x_stride);
  st = EpStats{};
  st.expert_load.assign(static_cast<std::size_t>(held), 0);

  // 2. Each assignment's copy; per destination, the tokens with an assignment there (ascending).
  std::vector<int> dest(static_cast<std::size_t>(n), -1), local(static_cast<std::size_t>(n), -1);
  std::vector<std::vector<long long>> rows_to(static_cast<std::size_t>(R));
  std::vector<long long> last(static_cast<std::size_t>(R), -1);
  std::vector<std::size_t> back_rows(static_cast<std::size_t>(R), 0);  // assignments served by each rank
  for (long long t = 0; t < Tn; ++t)
    for (int j = 0; j < k; ++j) {
      const std::size_t a = static_cast<std::size_t>(t * k + j);
      if (ids[a] < 0) continue;
      const Copy c = pl.choose(ids[a], me, t);
      dest[a] = c.rank;
      local[a] = c.local;
      ++back_rows[static_cast<std::size_t>(c.rank)];
      ++st.assignments;
      st.assignments_remote += c.rank != me;
      if (last[static_cast<std::size_t>(c.rank)] != t) {
        last[static_cast<std::size_t>(c.rank)] = t;
        rows_to[static_cast<std::size_t>(c.rank)].push_back(t);
      }
    }

  // 3a. Row counts.
  std::vector<std::int64_t> send_count(static_cast<std::size_t>(R)), recv_count(static_cast<std::size_t>(R), 0);
  Exchange cx(R);
  for (int q = 0; q < R; ++q) {
    const std::size_t qz = static_cast<std::size_t>(q);
    send_count[qz] = static_cast<std::int64_t>(rows_to[qz].size());
    cx.part(q, &send_count[qz], 1, &recv_count[qz], 1);
  }
  DEEPSHOCK_RETURN_IF_ERROR(x.exchange(cx));
  count_bytes(cx, me, st);

  // 3b. The rows and, per row, the k local expert indices (-1: not this destination's).
  std::vector<std::vector<T>> rows_send(static_cast<std::size_t>(R));
  std::vector<std::vector<int>> meta_send(static_cast<std::size_t>(R));
  std::vector<std::size_t> from(static_cast<std::size_t>(R) + 1, 0);  // received rows of source q: [from[q], from[q + 1])
  for (int q = 0; q < R; ++q) {
    const std::size_t qz = static_cast<std::size_t>(q);
    for (const long long t : rows_to[qz]) {
      const T* row = in.x + static_cast<std::size_t>(t) * xs;
      rows_send[qz].insert(rows_send[qz].end(), row, row + H);
      for (int j = 0; j < k; ++j) {
        const std::size_t a = static_cast<std::size_t>(t * k + j);
        meta_send[qz].push_back(dest[a] == q ? local[a] : -1);
      }
    }
    if (recv_count[qz] < 0) return Status::internal("ep: a negative row count from rank " + std::to_string(q));
    from[qz + 1] = from[qz] + static_cast<std::size_t>(recv_count[qz]);
    if (q != me) {
      st.rows_sent += static_cast<long long>(rows_to[qz].size());
      st.rows_received += recv_count[qz];
    }
  }
  const std::size_t recv_rows = from[static_cast<std::size_t>(R)];
  std::vector<T> rows_recv(recv_rows * H);
  std::vector<int> meta_recv(recv_rows * Kz);
  Exchange rx(R), mx(R);
  for (int q = 0; q < R; ++q) {
    const std::size_t qz = static_cast<std::size_t>(q), got = static_cast<std::size_t>(recv_count[qz]);
    rx.part(q, rows_send[qz].data(), rows_send[qz].size(), rows_recv.data() + from[qz] * H, got * H);
    mx.part(q, meta_send[qz].data(), meta_send[qz].size(), meta_recv.data() + from[qz] * Kz, got * Kz);
  }
  DEEPSHOCK_RETURN_IF_ERROR(x.exchange(rx));
  count_bytes(rx, me, st);
  DEEPSHOCK_RETURN_IF_ERROR(x.exchange(mx));
  count_bytes(mx, me, st);

  // 4. The local experts on the received rows (no shared expert here: it runs at home).
  for (const int l : meta_recv)
    if (l < -1 || l >= held) return Status::internal("ep: a received local expert index " + std::to_string(l) + " is outside this rank's");
  moe::host::detail::ExpertRows er;
  if (recv_rows > 0) {
    moe::LayerDims dl = d;
    dl.shared_intermediate = 0;
    const moe::LayerInputs<T> li{rows_recv.data(), static_cast<int>(recv_rows), 0, nullptr};
    moe::host::detail::expert_rows(dl, k, w, li, meta_recv.data(), held, er);
    for (const int l : meta_recv)
      if (l >= 0) ++st.expert_load[static_cast<std::size_t>(l)];
  }

  // 5. The outputs back home: per source, its rows in the order received, slots ascending.
  std::vector<std::vector<float>> back_send(static_cast<std::size_t>(R)), back_recv(static_cast<std::size_t>(R));
  Exchange bx(R);
  for (int q = 0; q < R; ++q) {
    const std::size_t qz = static_cast<std::size_t>(q);
    for (std::size_t r = from[qz]; r < from[qz + 1]; ++r)
      for (std::size_t j = 0; j < Kz; ++j)
        if (meta_recv[r * Kz + j] >= 0) {
          const float* o = er.o.data() + (r * Kz + j) * H;
          back_send[qz].insert(back_send[qz].end(), o, o + H);
        }
    back_recv[qz].resize(back_rows[qz] * H);
    bx.part(q, back_send[qz].data(), back_send[qz].size(), back_recv[qz].data(), back_recv[qz].size());
  }
  DEEPSHOCK_RETURN_IF_ERROR(x.exchange(bx));
  count_bytes(bx, me, st);
  if (Tn == 0) return Status::success();

  // 6. Home: the returned rows in slot positions, the shared expert, the ordered combine.
  moe::host::detail::ExpertRows home;
  if (d.shared_intermediate > 0) {
    const std::vector<int> none(static_cast<std::size_t>(n), -1);
    moe::host::detail::expert_rows(d, k, w, in, none.data(), held, home);
  } else {
    home.g.assign(static_cast<std::size_t>(Tn), 1.0f);
  }
  home.o.assign(static_cast<std::size_t>(n) * H, 0.0f);
  std::vector<std::size_t> next(static_cast<std::size_t>(R), 0);
  for (int q = 0; q < R; ++q) {
    const std::size_t qz = static_cast<std::size_t>(q);
    for (const long long t : rows_to[qz])
      for (int j = 0; j < k; ++j) {
        const std::size_t a = static_cast<std::size_t>(t * k + j);
        if (dest[a] != q) continue;
        std::memcpy(home.o.data() + a * H, back_recv[qz].data() + next[qz] * H, H * sizeof(float));
        ++next[qz];
      }
  }
  moe::host::detail::combine_rows(d, k, Tn, ids, wts, E, home, out.y, out.y_stride);
  return Status::success();
}

/// The checks every rank makes before its first exchange.
template <class T, class ExpertT, Transport X>
Status check_step(const X& x, const Placement& pl) {
  static_assert(ExpertT::adapter::kRank == 0, "deepshock::ep: LoRA experts are not supported by the expert-parallel step yet.");
  DEEPSHOCK_RETURN_IF_ERROR(pl.validate());
  if (pl.ranks() != x.size())
    return Status::invalid_argument("placement", "has " + std::to_string(pl.ranks()) + " ranks, the transport " + std::to_string(x.size()));
  if (x.rank() < 0 || x.rank() >= x.size()) return Status::invalid_argument("transport", "rank outside [0, size)");
  return Status::success();
}

/// Runs `body`; on an error, aborts the transport first so that no other rank waits for this one.
template <Transport X, class Body>
Status or_abort(X& x, Body&& body) {
  const Status st = body();
  if (!st.ok()) x.abort(st);
  return st;
}

}  // namespace detail

/// One EP step with caller-supplied routing on this rank's tokens: ids [T, k] (logical, -1 =
/// none) and weights [T, k]. `w` holds this rank's experts (placement.held(rank) order) and the
/// shared expert; writes y and, where given, out.expert_counts [E] (this rank's tokens). `stats`
/// (optional) receives what the step moved.
template <class T, class ExpertT, Transport X>
Status run_host_layer_routed(X& x, const Placement& pl, const moe::LayerDims& d, int k, const moe::LayerWeights<T, ExpertT>& w,
                             const moe::LayerInputs<T>& in, const int* topk_ids, const float* topk_weights, const moe::LayerOutputs<T>& out,
                             EpStats* stats = nullptr) {
  EpStats local;
  return detail::or_abort(x, [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR((detail::check_step<T, ExpertT>(x, pl)));
    DEEPSHOCK_RETURN_IF_ERROR(moe::host::detail::check_routed(d, pl.experts(), k, w, in, topk_ids, topk_weights, out));
    const Status st = detail::ep_step(x, pl, d, k, w, in, topk_ids, topk_weights, out, stats != nullptr ? *stats : local);
    return st;
  });
}

/// One EP step routing this rank's tokens with `Gate` on the host (as moe::host::run_layer;
/// options.expert_begin / expert_end must stay the default: the placement decides).
template <class Gate, class T, class ExpertT, Transport X>
Status run_host_layer(X& x, const Placement& pl, const moe::LayerDims& d, const gate::PolicyParams& params,
                      const gate::RouterOptions& options, const moe::LayerWeights<T, ExpertT>& w, const moe::LayerInputs<T>& in,
                      const moe::LayerOutputs<T>& out, EpStats* stats = nullptr) {
  static_assert(!Gate::kCapacity, "deepshock::ep: capacity-limited gates (Switch) drop by position over the whole batch; not supported.");
  EpStats local;
  EpStats& st = stats != nullptr ? *stats : local;
  return detail::or_abort(x, [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR((detail::check_step<T, ExpertT>(x, pl)));
    if (pl.experts() != Gate::kExperts)
      return Status::invalid_argument("placement", "places " + std::to_string(pl.experts()) + " experts, the gate routes to " +
                                                       std::to_string(Gate::kExperts));
    if (options.expert_begin != 0 || options.expert_end != -1)
      return Status::invalid_argument("options.expert_begin/expert_end", "must stay [0, E): with EP the placement decides");
    if (in.tokens == 0) {  // no routing to do, but the exchanges still need this rank
      DEEPSHOCK_RETURN_IF_ERROR(moe::host::detail::check_routed(d, Gate::kExperts, Gate::kTopK, w, in, nullptr, nullptr, out));
      return detail::ep_step(x, pl, d, Gate::kTopK, w, in, nullptr, nullptr, out, st);
    }
    return moe::host::detail::route<Gate>("deepshock::ep::run_host_layer", d, params, options, w, in, out,
                                          [&](const int* ids, const float* wts, int) {
                                            return detail::ep_step(x, pl, d, Gate::kTopK, w, in, ids, wts, out, st);
                                          });
  });
}

}  // namespace deepshock::ep
