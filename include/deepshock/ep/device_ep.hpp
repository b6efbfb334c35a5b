// deepshock/ep/device_ep.hpp — one rank of an expert-parallel MoE layer on the device:
// ep::DeviceEp<Layer, Transport> runs the layer's own kernels around an exchange of rows.
//
//   using Layer = ds::moe::Layer<Gate, ds::moe::Expert<>, ds::bf16>;
//   ep::DeviceEp<Layer, ep::InProcessTransport> rank(transport, placement, dims, params);
//   DEEPSHOCK_RETURN_IF_ERROR(rank.status());
//   ds::Status st = rank.run(inputs, rank_weights, outputs, stream, &stats);   // every rank, every step
//
// A step on rank `me` (device pointers; the rank's LayerWeights hold the gate, the shared expert
// and its physical experts in placement.held(me) order):
//   1. the router on the rank's tokens (logical ids and weights, as the whole layer's);
//   2. the plan kernel: each slot's copy (Placement::choose), and per destination rank whether
//      the token goes there and with how many slots; two exclusive scans turn that into rows of
//      a rank-major send buffer — one row per token and destination, not one per expert;
//   3. the pack kernel (rows, and per row the slots' local expert indices and weights); the
//      counts exchange (rows and assignments per peer) and a copy of them to the host, which
//      sizes the buffers and the later exchanges; the rows, ids and weights exchange;
//   4. Layer::run_slots on the received rows: the rank's experts through the grouped GEMMs,
//      each valid slot's weighted fp32 output row, no shared expert, no combine;
//   5. per source, those rows in the order received (a scan of the valid slots per row) back
//      home;
//   6. at home, the scatter kernel puts each returned row at its slot, and Layer::run_combine
//      adds them in slot order to the shared expert: y is bitwise what the whole layer on one
//      rank gives these tokens (every expert row depends on its own input row only, and the
//      combine is the same kernel over the same rows).
// Host synchronisation: once per step, to read the counts (the in-process transport and NCCL's
// send / recv take sizes from the host); with the in-process transport also before each
// exchange, which copies on the host. Buffers grow to the largest step seen and are kept.
// Every rank must run every step, with or without tokens; an error on any rank aborts the
// transport so that every rank returns one (none waits forever).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/ep/device_kernels.hpp"
#include "deepshock/ep/host_ep.hpp"
#include "deepshock/ep/placement.hpp"
#include "deepshock/ep/transport.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/moe/layer.hpp"
#include "deepshock/platform/runtime.hpp"

namespace deepshock::ep {

/// A copy function for ep::InProcessGroup whose ranks are threads sharing one device: a
/// device-to-device copy, complete on return (the simulator: a host copy).
inline Status device_copy(void* dst, const void* src, std::size_t bytes) {
  DEEPSHOCK_RETURN_IF_ERROR(rt::memcpy_async(dst, src, bytes, rt::Copy::device_to_device, nullptr));
  return rt::stream_synchronize(nullptr);
}

/// The router options of DeviceEp's home layer: the projection takes the same kernel for every
/// token count (gate::RouterOptions::batch_invariant), so a rank routes its share of the tokens
/// exactly as one rank routes them all. Build a single-rank reference layer with them too.
inline gate::RouterOptions batch_invariant(gate::RouterOptions o = {}) {
  o.batch_invariant = true;
  return o;
}

namespace detail {
/// Whether a transport orders its exchanges on the stream (NCCL) or copies at once on the host
/// (the in-process transport: the stream must be drained first).
template <class X>
constexpr bool stream_ordered() {
  if constexpr (requires { X::kStreamOrdered; }) return X::kStreamOrdered;
  else return false;
}

/// Grows `b` to at least n elements (contents not kept).
template <class U>
Status ensure(rt::DeviceBuffer<U>& b, std::size_t n) {
  if (n == 0) n = 1;
  return b.size() >= n ? Status::success() : b.allocate(n + n / 4);
}
}  // namespace detail

template <class L, Transport X>
class DeviceEp {
 public:
  using T = typename L::value_type;
  using Gate = typename L::gate_type;
  using ExpertT = typename L::expert_type;
  static constexpr int kK = Gate::kTopK;
  static_assert(!Gate::kCapacity, "deepshock::ep: capacity-limited gates (Switch) drop by position over the whole batch; not supported.");
  static_assert(ExpertT::adapter::kRank == 0, "deepshock::ep: LoRA experts are not supported by the expert-parallel step yet.");

  /// `dims`: the layer's (max_tokens: this rank's tokens per step). The expert side accepts up
  /// to ranks x max_tokens received rows. `options`: the router's (routed scaling, ...); the
  /// home layer routes with batch_invariant set, and the placement decides the expert ranges.
  DeviceEp(X& transport, const Placement& placement, moe::LayerDims dims, gate::PolicyParams params = gate::default_params<Gate>(),
           gate::RouterOptions options = {})
      : x_(transport),
        pl_(placement),
        options_(options),
        home_(dims, params, batch_invariant(options)),
        expert_(expert_dims(dims, placement.ranks()), params, local_range(placement, transport.rank())) {
    status_.assign(init());  // in the body: init() fills the device buffers declared after status_
  }

  /// The constructor's checks; run returns it too.
  const Status& status() const noexcept { return status_; }
  const L& home_layer() const noexcept { return home_; }

  /// One step (see the file comment). Writes y and, where given, topk_ids / topk_weights.
  Status run(const moe::LayerInputs<T>& in, const moe::LayerWeights<T, ExpertT>& w, const moe::LayerOutputs<T>& out, rt::stream_t stream,
             EpStats* stats = nullptr) {
    EpStats local;
    EpStats& st = stats != nullptr ? *stats : local;
    const Status s = step(in, w, out, stream, st, stats != nullptr);
    if (!s.ok()) x_.abort(s);
    return s;
  }

 private:
  static moe::LayerDims expert_dims(moe::LayerDims d, int ranks) {
    d.shared_intermediate = 0;
    d.max_tokens = d.max_tokens * (ranks > 0 ? ranks : 1);
    return d;
  }
  static gate::RouterOptions local_range(const Placement& p, int rank) {
    gate::RouterOptions o;
    o.expert_begin = 0;  // the expert side sees local indices [0, held)
    o.expert_end = rank >= 0 && rank < p.ranks() && !p.held(rank).empty() ? static_cast<int>(p.held(rank).size()) : 1;
    return o;
  }

  Status init() {
    if (options_.expert_begin != 0 || options_.expert_end != -1)
      return Status::invalid_argument("options.expert_begin/expert_end", "must stay [0, E): with EP the placement decides");
    DEEPSHOCK_RETURN_IF_ERROR(pl_.validate());
    if (pl_.ranks() != x_.size())
      return Status::invalid_argument("placement",
                                      "has " + std::to_string(pl_.ranks()) + " ranks, the transport " + std::to_string(x_.size()));
    if (pl_.experts() != Gate::kExperts)
      return Status::invalid_argument("placement", "places " + std::to_string(pl_.experts()) + " experts, the gate routes to " +
                                                       std::to_string(Gate::kExperts));
    DEEPSHOCK_RETURN_IF_ERROR(home_.status());
    DEEPSHOCK_RETURN_IF_ERROR(expert_.status());
    std::vector<int> begin(1, 0), rank, local;
    for (int e = 0; e < pl_.experts(); ++e) {
      for (const Copy& c : pl_.copies(e)) {
        rank.push_back(c.rank);
        local.push_back(c.local);
      }
      begin.push_back(static_cast<int>(rank.size()));
    }
    DEEPSHOCK_RETURN_IF_ERROR(copy_begin_.allocate(begin.size()));
    DEEPSHOCK_RETURN_IF_ERROR(copy_rank_.allocate(rank.size()));
    DEEPSHOCK_RETURN_IF_ERROR(copy_local_.allocate(local.size()));
    DEEPSHOCK_RETURN_IF_ERROR(copy_begin_.copy_from_host(begin.data(), begin.size()));
    DEEPSHOCK_RETURN_IF_ERROR(copy_rank_.copy_from_host(rank.data(), rank.size()));
    DEEPSHOCK_RETURN_IF_ERROR(copy_local_.copy_from_host(local.data(), local.size()));
    DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(nullptr));
    const int R = x_.size();
    DEEPSHOCK_RETURN_IF_ERROR(send_counts_.allocate(2 * static_cast<std::size_t>(R)));
    DEEPSHOCK_RETURN_IF_ERROR(recv_counts_.allocate(2 * static_cast<std::size_t>(R)));
    return Status::success();
  }

  /// An exchange of device buffers; drains the stream first for a host-copying transport.
  Status exchange(Exchange& e, rt::stream_t stream, EpStats& st) {
    if constexpr (!detail::stream_ordered<X>()) DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(stream));
    e.stream = stream;
    DEEPSHOCK_RETURN_IF_ERROR(x_.exchange(e));
    detail::count_bytes(e, x_.rank(), st);
    return Status::success();
  }

  Status step(const moe::LayerInputs<T>& in, const moe::LayerWeights<T, ExpertT>& w, const moe::LayerOutputs<T>& out, rt::stream_t stream,
              EpStats& st, bool count_loads) {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    DEEPSHOCK_RETURN_IF_ERROR(moe::detail::check_layer_run(home_.dims(), w, in, out, /*routed=*/false, /*need_align=*/true));
    if (in.x_stride != 0 && in.x_stride != home_.dims().hidden)
      return Status::invalid_argument("x_stride", "the router reads x densely: must be 0 or hidden");
    const int R = x_.size(), me = x_.rank(), Tn = in.tokens, H = home_.dims().hidden;
    const std::size_t Hz = static_cast<std::size_t>(H), Kz = kK, n = static_cast<std::size_t>(Tn) * Kz;
    const std::size_t flags = static_cast<std::size_t>(R) * static_cast<std::size_t>(Tn) + 1;
    st = EpStats{};
    st.expert_load.assign(pl_.held(me).size(), 0);

    // 1-2. Routing and the plan.
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(ids_, n));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(wts_, n));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(dest_, n));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(local_, n));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(row_flag_, flags));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(asg_count_, flags));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(row_pos_, flags));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(asg_pos_, flags));
    DEEPSHOCK_RETURN_IF_ERROR(scan_.reserve(static_cast<long long>(flags)));
    DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(row_flag_.data(), 0, flags * sizeof(int), stream));
    DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(asg_count_.data(), 0, flags * sizeof(int), stream));
    if (Tn > 0) {
      gate::Router<Gate> router = home_.router();
      if (in.token_mask != nullptr) {
        gate::RouterOptions o = router.options();
        o.token_mask = in.token_mask;
        router = gate::Router<Gate>(router.params(), o);
      }
      DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(router_ws_, gate::Router<Gate>::workspace_bytes(Tn)));
      const gate::GateInputs<T> gi{in.x, w.w_gate, nullptr, Tn, H, w.gate_bias, w.gate_bias_size, w.w_gate_bias};
      gate::RoutingOutputs ro;
      ro.topk_ids = ids_.data();
      ro.topk_weights = wts_.data();
      DEEPSHOCK_RETURN_IF_ERROR(router.run(gi, ro, router_ws_.data(), router_ws_.size(), stream));
      const detail::DevicePlacement dp{copy_begin_.data(), copy_rank_.data(), copy_local_.data(), pl_.experts()};
      const unsigned blocks = static_cast<unsigned>((Tn + detail::kEpThreads - 1) / detail::kEpThreads);
      DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_plan_kernel, {dim3(blocks), dim3(detail::kEpThreads), 0, stream}, ids_.data(),
                                       Tn, kK, me, dp, dest_.data(), local_.data(), row_flag_.data(), asg_count_.data()));
      if (out.topk_ids != nullptr)
        DEEPSHOCK_RETURN_IF_ERROR(rt::memcpy_async(out.topk_ids, ids_.data(), n * sizeof(int), rt::Copy::device_to_device, stream));
      if (out.topk_weights != nullptr)
        DEEPSHOCK_RETURN_IF_ERROR(rt::memcpy_async(out.topk_weights, wts_.data(), n * sizeof(float), rt::Copy::device_to_device, stream));
    }
    DEEPSHOCK_RETURN_IF_ERROR(scan_.run(row_flag_.data(), row_pos_.data(), static_cast<long long>(flags), stream));
    DEEPSHOCK_RETURN_IF_ERROR(scan_.run(asg_count_.data(), asg_pos_.data(), static_cast<long long>(flags), stream));
    DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_counts_kernel, {dim3(1), dim3(static_cast<unsigned>(R)), 0, stream},
                                     row_pos_.data(), asg_pos_.data(), Tn, R, send_counts_.data()));

    // 3. Counts, then rows, ids and weights.
    std::vector<std::int64_t> sent(2 * static_cast<std::size_t>(R)), got(2 * static_cast<std::size_t>(R));
    {
      Exchange e(R);
      for (int q = 0; q < R; ++q) {
        const std::size_t qz = static_cast<std::size_t>(q);
        e.send[qz] = send_counts_.data() + 2 * qz;
        e.recv[qz] = recv_counts_.data() + 2 * qz;
        e.send_bytes[qz] = e.recv_bytes[qz] = 2 * sizeof(std::int64_t);
      }
      DEEPSHOCK_RETURN_IF_ERROR(exchange(e, stream, st));
      DEEPSHOCK_RETURN_IF_ERROR(send_counts_.copy_to_host(sent.data(), sent.size(), stream));
      DEEPSHOCK_RETURN_IF_ERROR(recv_counts_.copy_to_host(got.data(), got.size(), stream));
      DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(stream));
    }
    // Host offsets: rows / assignments this rank sends to each peer (rank-major, as packed) and
    // receives from each peer (source-major).
    std::vector<std::size_t> send_row(static_cast<std::size_t>(R) + 1, 0), send_asg(send_row), recv_row(send_row), recv_asg(send_row);
    for (int q = 0; q < R; ++q) {
      const std::size_t qz = static_cast<std::size_t>(q);
      if (got[2 * qz] < 0 || got[2 * qz + 1] < 0) return Status::internal("ep: negative counts from rank " + std::to_string(q));
      send_row[qz + 1] = send_row[qz] + static_cast<std::size_t>(sent[2 * qz]);
      send_asg[qz + 1] = send_asg[qz] + static_cast<std::size_t>(sent[2 * qz + 1]);
      recv_row[qz + 1] = recv_row[qz] + static_cast<std::size_t>(got[2 * qz]);
      recv_asg[qz + 1] = recv_asg[qz] + static_cast<std::size_t>(got[2 * qz + 1]);
      st.assignments += sent[2 * qz + 1];
      if (q != me) {
        st.rows_sent += sent[2 * qz];
        st.rows_received += got[2 * qz];
        st.assignments_remote += sent[2 * qz + 1];
      }
    }
    const std::size_t rows_out = send_row[static_cast<std::size_t>(R)], rows_in = recv_row[static_cast<std::size_t>(R)];
    const std::size_t asg_out = send_asg[static_cast<std::size_t>(R)], asg_in = recv_asg[static_cast<std::size_t>(R)];
    if (rows_in > static_cast<std::size_t>(expert_.dims().max_tokens))
      return Status::resource_exhausted("rows", std::to_string(rows_in) + " received rows exceed ranks x max_tokens");
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(send_rows_, rows_out * Hz));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(send_ids_, rows_out * Kz));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(send_wts_, rows_out * Kz));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(recv_rows_, rows_in * Hz));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(recv_ids_, rows_in * Kz));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(recv_wts_, rows_in * Kz));
    if (Tn > 0) {
      const long long ldx = in.x_stride != 0 ? in.x_stride : H;
      DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_pack_kernel<T>,
                                       {dim3(static_cast<unsigned>(Tn)), dim3(detail::kEpThreads), 0, stream}, in.x, ldx, Tn, H, kK, R,
                                       dest_.data(), local_.data(), wts_.data(), row_flag_.data(), row_pos_.data(), send_rows_.data(),
                                       send_ids_.data(), send_wts_.data()));
    }
    Exchange ex(R), ei(R), ew(R);
    for (int q = 0; q < R; ++q) {
      const std::size_t qz = static_cast<std::size_t>(q);
      const std::size_t so = send_row[qz], sn = send_row[qz + 1] - so, ro = recv_row[qz], rn = recv_row[qz + 1] - ro;
      ex.send[qz] = send_rows_.data() + so * Hz;
      ex.send_bytes[qz] = sn * Hz * sizeof(T);
      ex.recv[qz] = recv_rows_.data() + ro * Hz;
      ex.recv_bytes[qz] = rn * Hz * sizeof(T);
      ei.send[qz] = send_ids_.data() + so * Kz;
      ei.send_bytes[qz] = sn * Kz * sizeof(int);
      ei.recv[qz] = recv_ids_.data() + ro * Kz;
      ei.recv_bytes[qz] = rn * Kz * sizeof(int);
      ew.send[qz] = send_wts_.data() + so * Kz;
      ew.send_bytes[qz] = sn * Kz * sizeof(float);
      ew.recv[qz] = recv_wts_.data() + ro * Kz;
      ew.recv_bytes[qz] = rn * Kz * sizeof(float);
    }
    DEEPSHOCK_RETURN_IF_ERROR(exchange(ex, stream, st));
    DEEPSHOCK_RETURN_IF_ERROR(exchange(ei, stream, st));
    DEEPSHOCK_RETURN_IF_ERROR(exchange(ew, stream, st));

    // 4-5. The experts on the received rows; their valid slot rows back, per source in order.
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(slot_rows_, rows_in * Kz * Hz));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(ret_count_, rows_in + 1));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(ret_pos_, rows_in + 1));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(ret_send_, asg_in * Hz));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(ret_recv_, asg_out * Hz));
    if (rows_in > 0) {
      const int Rr = static_cast<int>(rows_in);
      DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(expert_ws_, expert_.workspace_bytes(Rr)));
      moe::RunOptions ro;
      ro.check_ids = false;  // the plan kernel wrote them: in [-1, held)
      DEEPSHOCK_RETURN_IF_ERROR(expert_.run_slots(moe::LayerInputs<T>{recv_rows_.data(), Rr, 0, nullptr}, recv_ids_.data(),
                                                  recv_wts_.data(), routed_only(w), slot_rows_.data(), expert_ws_.data(), expert_ws_.size(),
                                                  stream, ro));
      DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_valid_slots_kernel,
                                       {dim3(static_cast<unsigned>((rows_in + 1 + detail::kEpThreads - 1) / detail::kEpThreads)),
                                        dim3(detail::kEpThreads), 0, stream},
                                       recv_ids_.data(), static_cast<long long>(rows_in), kK, ret_count_.data()));
      DEEPSHOCK_RETURN_IF_ERROR(scan_.reserve(static_cast<long long>(rows_in) + 1));
      DEEPSHOCK_RETURN_IF_ERROR(scan_.run(ret_count_.data(), ret_pos_.data(), static_cast<long long>(rows_in) + 1, stream));
      DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_return_pack_kernel,
                                       {dim3(static_cast<unsigned>(Rr)), dim3(detail::kEpThreads), 0, stream}, recv_ids_.data(),
                                       slot_rows_.data(), ret_pos_.data(), H, kK, ret_send_.data()));
      if (count_loads) DEEPSHOCK_RETURN_IF_ERROR(count_load(rows_in, stream, st));
    }
    Exchange eb(R);
    for (int q = 0; q < R; ++q) {
      const std::size_t qz = static_cast<std::size_t>(q);
      eb.send[qz] = ret_send_.data() + recv_asg[qz] * Hz;  // source q's rows: its assignments to this rank
      eb.send_bytes[qz] = (recv_asg[qz + 1] - recv_asg[qz]) * Hz * sizeof(float);
      eb.recv[qz] = ret_recv_.data() + send_asg[qz] * Hz;  // rank q's rows for this rank's assignments there
      eb.recv_bytes[qz] = (send_asg[qz + 1] - send_asg[qz]) * Hz * sizeof(float);
    }
    DEEPSHOCK_RETURN_IF_ERROR(exchange(eb, stream, st));
    if (Tn == 0) return Status::success();

    // 6. Home: the rows in slot order, the shared expert and the combine.
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(slot_home_, n * Hz));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(position_, n));
    DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_scatter_kernel,
                                     {dim3(static_cast<unsigned>(Tn)), dim3(detail::kEpThreads), 0, stream}, ret_recv_.data(), dest_.data(),
                                     asg_pos_.data(), Tn, H, kK, slot_home_.data(), position_.data()));
    DEEPSHOCK_RETURN_IF_ERROR(detail::ensure(home_ws_, home_.workspace_bytes(Tn)));
    moe::LayerInputs<T> hin = in;
    hin.token_mask = nullptr;  // the router read it; masked tokens have no slots
    return home_.run_combine(hin, slot_home_.data(), position_.data(), w, out, home_ws_.data(), home_ws_.size(), stream);
  }

  /// The weights without the shared expert (the expert side runs the routed experts only).
  static moe::LayerWeights<T, ExpertT> routed_only(moe::LayerWeights<T, ExpertT> w) {
    w.shared_w1 = w.shared_w3 = w.shared_w2 = nullptr;
    w.shared_gate = nullptr;
    w.shared_gate_kind = moe::SharedGate::none;
    w.shared_b1 = w.shared_b3 = w.shared_b2 = nullptr;
    return w;
  }

  /// Assignments per physical expert computed here (stats): the received ids on the host.
  Status count_load(std::size_t rows, rt::stream_t stream, EpStats& st) {
    std::vector<int> ids(rows * kK);
    DEEPSHOCK_RETURN_IF_ERROR(recv_ids_.copy_to_host(ids.data(), ids.size(), stream));
    DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(stream));
    for (const int l : ids)
      if (l >= 0 && static_cast<std::size_t>(l) < st.expert_load.size()) ++st.expert_load[static_cast<std::size_t>(l)];
    return Status::success();
  }

  X& x_;
  Placement pl_;
  gate::RouterOptions options_;
  L home_, expert_;
  Status status_;
  detail::ExclusiveScan scan_;
  rt::DeviceBuffer<int> copy_begin_, copy_rank_, copy_local_;
  rt::DeviceBuffer<int> ids_, dest_, local_, row_flag_, asg_count_, row_pos_, asg_pos_, send_ids_, recv_ids_, ret_count_, ret_pos_,
      position_;
  rt::DeviceBuffer<float> wts_, send_wts_, recv_wts_, slot_rows_, ret_send_, ret_recv_, slot_home_;
  rt::DeviceBuffer<std::int64_t> send_counts_, recv_counts_;
  rt::DeviceBuffer<T> send_rows_, recv_rows_;
  rt::DeviceBuffer<unsigned char> router_ws_, expert_ws_, home_ws_;
};

}  // namespace deepshock::ep
#endif  // DEEPSHOCK_HAS_KERNELS
