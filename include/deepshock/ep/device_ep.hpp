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
// send / recv take sizes from the host) — none with EpOptions::fixed_sizes, whose parts have
// fixed sizes, so a step on a stream-ordered transport can be captured in a CUDA graph — and
// once more when EpStats are asked for (the counts and the loads);
// with the in-process transport also before each exchange, which copies on the host. A
// transport with a bounded wait (NcclTransport::wait) is used for these; wait on it, not on a
// plain stream synchronize, after a step too. Every buffer is sized at construction from the
// dims and EpOptions::max_recv_rows (ranks x max_tokens by default): no step allocates, since a
// cudaMalloc / cudaFree beside another rank's pending NCCL kernels can deadlock. The received
// side holds max_recv_rows x (H in T, and k x H fp32 slot rows): set max_recv_rows to what a
// rank can receive when ranks x max_tokens is too much memory (a step beyond it fails).
// Every rank must run every step, with or without tokens; an error on any rank aborts the
// transport so that every rank returns one (none waits forever). Tunings whose GEMM results
// depend on the launch (stream-K) are refused: the bitwise promise needs batch-invariant GEMMs.
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
/// What DeviceEp sizes its buffers for.
struct EpOptions {
  int max_recv_rows = 0;  ///< token rows a rank may receive in one step; 0: ranks x dims.max_tokens
  /// Every exchange moves parts of a fixed size — max_tokens rows to each peer, max_tokens x k
  /// returned rows from each — with the counts kept on the device: no host synchronisation in a
  /// step (unless EpStats are asked for), so with a stream-ordered transport (NCCL) a step can
  /// be captured in a CUDA graph. It moves the padding too, and the expert side runs over
  /// ranks x max_tokens rows (the empty ones routed nowhere): for decode, where max_tokens is
  /// small. max_recv_rows is then ranks x max_tokens.
  bool fixed_sizes = false;
};

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
  static_assert(!L::kStreamK, "deepshock::ep: stream-K tunings split k-tiles by the whole launch, so a rank's GEMMs would round "
                              "differently from one rank's; use a tuning without stream-K.");

  /// `dims`: the layer's (max_tokens: this rank's tokens per step). `options`: the router's
  /// (routed scaling, ...); the home layer routes with batch_invariant set, and the placement
  /// decides the expert ranges. `ep`: buffer sizes (see the file comment).
  DeviceEp(X& transport, const Placement& placement, moe::LayerDims dims, gate::PolicyParams params = gate::default_params<Gate>(),
           gate::RouterOptions options = {}, EpOptions ep = {})
      : x_(transport),
        pl_(placement),
        options_(options),
        fixed_(ep.fixed_sizes),
        max_recv_(ep.max_recv_rows > 0 && !ep.fixed_sizes ? ep.max_recv_rows
                                                          : dims.max_tokens * (placement.ranks() > 0 ? placement.ranks() : 1)),
        home_(dims, params, batch_invariant(options)),
        expert_(expert_dims(dims, max_recv_), params, local_range(placement, transport.rank())) {
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
  static moe::LayerDims expert_dims(moe::LayerDims d, int max_recv) {
    d.shared_intermediate = 0;
    d.max_tokens = max_recv;
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
    if (max_recv_ < 1) return Status::invalid_argument("ep.max_recv_rows", "must be >= 0 (0: ranks x max_tokens)");
    if constexpr (!DEEPSHOCK_SIM && requires { x_.copies_device_memory(); })
      if (!x_.copies_device_memory())
        return Status::invalid_argument("transport", "an in-process group whose ranks hold GPU memory needs a device copy function "
                                                     "(ep::InProcessGroup(ranks, timeout, ep::device_copy))");
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
    return allocate();
  }

  /// Every buffer, at its bound (no step allocates; see the file comment).
  Status allocate() {
    const std::size_t R = static_cast<std::size_t>(x_.size()), Tmax = static_cast<std::size_t>(home_.dims().max_tokens);
    const std::size_t Hz = static_cast<std::size_t>(home_.dims().hidden), Kz = kK, n = Tmax * Kz;
    const std::size_t flags = R * Tmax + 1, rows_in = static_cast<std::size_t>(max_recv_);
    const std::size_t rows_out = fixed_ ? R * Tmax : Tmax * (Kz < R ? Kz : R), returned = fixed_ ? R * Tmax * Kz : n;
    auto at_least_one = [](std::size_t v) { return v > 0 ? v : std::size_t(1); };
    for (auto* b : {&ids_, &dest_, &local_, &position_}) DEEPSHOCK_RETURN_IF_ERROR(b->allocate(at_least_one(n)));
    for (auto* b : {&row_flag_, &asg_count_, &row_pos_, &asg_pos_}) DEEPSHOCK_RETURN_IF_ERROR(b->allocate(flags));
    for (auto* b : {&send_ids_}) DEEPSHOCK_RETURN_IF_ERROR(b->allocate(at_least_one(rows_out * Kz)));
    for (auto* b : {&recv_ids_}) DEEPSHOCK_RETURN_IF_ERROR(b->allocate(rows_in * Kz));
    for (auto* b : {&ret_count_, &ret_pos_}) DEEPSHOCK_RETURN_IF_ERROR(b->allocate(rows_in + 1));
    DEEPSHOCK_RETURN_IF_ERROR(wts_.allocate(at_least_one(n)));
    DEEPSHOCK_RETURN_IF_ERROR(send_wts_.allocate(at_least_one(rows_out * Kz)));
    DEEPSHOCK_RETURN_IF_ERROR(recv_wts_.allocate(rows_in * Kz));
    DEEPSHOCK_RETURN_IF_ERROR(slot_rows_.allocate(rows_in * Kz * Hz));
    DEEPSHOCK_RETURN_IF_ERROR(ret_send_.allocate(rows_in * Kz * Hz));
    DEEPSHOCK_RETURN_IF_ERROR(ret_recv_.allocate(at_least_one(returned * Hz)));
    DEEPSHOCK_RETURN_IF_ERROR(slot_home_.allocate(at_least_one(n * Hz)));
    DEEPSHOCK_RETURN_IF_ERROR(send_rows_.allocate(at_least_one(rows_out * Hz)));
    DEEPSHOCK_RETURN_IF_ERROR(recv_rows_.allocate(rows_in * Hz));
    DEEPSHOCK_RETURN_IF_ERROR(send_counts_.allocate(2 * R));
    DEEPSHOCK_RETURN_IF_ERROR(recv_counts_.allocate(2 * R));
    DEEPSHOCK_RETURN_IF_ERROR(router_ws_.allocate(at_least_one(gate::Router<Gate>::workspace_bytes(static_cast<int>(Tmax)))));
    DEEPSHOCK_RETURN_IF_ERROR(home_ws_.allocate(at_least_one(home_.workspace_bytes())));
    DEEPSHOCK_RETURN_IF_ERROR(expert_ws_.allocate(at_least_one(expert_.workspace_bytes())));
    return scan_.reserve(static_cast<long long>(flags > rows_in + 1 ? flags : rows_in + 1));
  }

  /// The host waits for the stream: the transport's bounded wait where it has one.
  Status sync(rt::stream_t stream) {
    if constexpr (requires { x_.wait(stream); }) return x_.wait(stream);
    else return rt::stream_synchronize(stream);
  }

  /// An exchange of device buffers; drains the stream first for a host-copying transport.
  Status exchange(Exchange& e, rt::stream_t stream, EpStats& st) {
    if constexpr (!detail::stream_ordered<X>()) DEEPSHOCK_RETURN_IF_ERROR(sync(stream));
    e.stream = stream;
    DEEPSHOCK_RETURN_IF_ERROR(x_.exchange(e));
    detail::count_bytes(e, x_.rank(), st);
    return Status::success();
  }

  Status step(const moe::LayerInputs<T>& in, const moe::LayerWeights<T, ExpertT>& w, const moe::LayerOutputs<T>& out, rt::stream_t stream,
              EpStats& st, bool count_loads) {
    st = EpStats{};
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    if (out.expert_counts != nullptr)
      return Status::invalid_argument("out.expert_counts", "not written by an EP step: EpStats::expert_load has each rank's loads");
    DEEPSHOCK_RETURN_IF_ERROR(moe::detail::check_layer_run(home_.dims(), w, in, out, /*routed=*/false, /*need_align=*/true));
    if (in.x_stride != 0 && in.x_stride != home_.dims().hidden)
      return Status::invalid_argument("x_stride", "the router reads x densely: must be 0 or hidden");
    const int R = x_.size(), me = x_.rank(), Tn = in.tokens, H = home_.dims().hidden;
    const std::size_t Hz = static_cast<std::size_t>(H), Kz = kK, n = static_cast<std::size_t>(Tn) * Kz;
    const std::size_t flags = static_cast<std::size_t>(R) * static_cast<std::size_t>(Tn) + 1;
    st.expert_load.assign(pl_.held(me).size(), 0);

    // 1-2. Routing and the plan.
    DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(row_flag_.data(), 0, flags * sizeof(int), stream));
    DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(asg_count_.data(), 0, flags * sizeof(int), stream));
    if (Tn > 0) {
      gate::Router<Gate> router = home_.router();
      if (in.token_mask != nullptr) {
        gate::RouterOptions o = router.options();
        o.token_mask = in.token_mask;
        router = gate::Router<Gate>(router.params(), o);
      }
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

    // 3. Counts, then rows, ids and weights. Every rank exchanges the counts (the same calls on
    // every rank); they are read on the host in the exact-size mode, which sizes the exchanges
    // with them, and for EpStats.
    std::vector<std::int64_t> sent(2 * static_cast<std::size_t>(R)), got(2 * static_cast<std::size_t>(R));
    {
      Exchange e(R);
      for (int q = 0; q < R; ++q) {
        const std::size_t qz = static_cast<std::size_t>(q);
        e.part(q, send_counts_.data() + 2 * qz, 2, recv_counts_.data() + 2 * qz, 2);
      }
      DEEPSHOCK_RETURN_IF_ERROR(exchange(e, stream, st));
      if (!fixed_ || count_loads) {
        DEEPSHOCK_RETURN_IF_ERROR(send_counts_.copy_to_host(sent.data(), sent.size(), stream));
        DEEPSHOCK_RETURN_IF_ERROR(recv_counts_.copy_to_host(got.data(), got.size(), stream));
        DEEPSHOCK_RETURN_IF_ERROR(sync(stream));
      }
    }
    for (int q = 0; q < R; ++q) {
      const std::size_t qz = static_cast<std::size_t>(q);
      if (got[2 * qz] < 0 || got[2 * qz + 1] < 0) return Status::internal("ep: negative counts from rank " + std::to_string(q));
      st.assignments += sent[2 * qz + 1];
      if (q != me) {
        st.rows_sent += sent[2 * qz];
        st.rows_received += got[2 * qz];
        st.assignments_remote += sent[2 * qz + 1];
      }
    }
    // Parts, per peer: rows this rank sends (rank-major, as packed) and receives (source-major),
    // and assignments it sends (its returned rows come back in their order) and receives. Fixed
    // sizes: max_tokens rows and max_tokens x k returned rows per peer.
    const std::size_t C = fixed_ ? static_cast<std::size_t>(home_.dims().max_tokens) : 0, Cr = C * Kz;
    std::vector<std::size_t> send_row(static_cast<std::size_t>(R) + 1, 0), send_asg(send_row), recv_row(send_row), recv_asg(send_row);
    for (int q = 0; q < R; ++q) {
      const std::size_t qz = static_cast<std::size_t>(q);
      send_row[qz + 1] = send_row[qz] + (fixed_ ? C : static_cast<std::size_t>(sent[2 * qz]));
      send_asg[qz + 1] = send_asg[qz] + (fixed_ ? Cr : static_cast<std::size_t>(sent[2 * qz + 1]));
      recv_row[qz + 1] = recv_row[qz] + (fixed_ ? C : static_cast<std::size_t>(got[2 * qz]));
      recv_asg[qz + 1] = recv_asg[qz] + (fixed_ ? Cr : static_cast<std::size_t>(got[2 * qz + 1]));
    }
    const std::size_t rows_in = recv_row[static_cast<std::size_t>(R)];
    if (rows_in > static_cast<std::size_t>(max_recv_))
      return Status::resource_exhausted("ep.max_recv_rows",
                                        std::to_string(rows_in) + " rows received in this step, room for " + std::to_string(max_recv_));
    if (fixed_)  // empty rows of the fixed parts carry no slots
      DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(send_ids_.data(), 0xFF, send_row[static_cast<std::size_t>(R)] * Kz * sizeof(int), stream));
    if (Tn > 0) {
      const long long ldx = in.x_stride != 0 ? in.x_stride : H;
      DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_pack_kernel<T>,
                                       {dim3(static_cast<unsigned>(Tn)), dim3(detail::kEpThreads), 0, stream}, in.x, ldx, Tn, H, kK, R,
                                       dest_.data(), local_.data(), wts_.data(), row_flag_.data(), row_pos_.data(), static_cast<int>(C),
                                       send_rows_.data(), send_ids_.data(), send_wts_.data()));
    }
    Exchange ex(R), ei(R), ew(R);
    for (int q = 0; q < R; ++q) {
      const std::size_t qz = static_cast<std::size_t>(q);
      const std::size_t so = send_row[qz], sn = send_row[qz + 1] - so, ro = recv_row[qz], rn = recv_row[qz + 1] - ro;
      ex.part(q, send_rows_.data() + so * Hz, sn * Hz, recv_rows_.data() + ro * Hz, rn * Hz);
      ei.part(q, send_ids_.data() + so * Kz, sn * Kz, recv_ids_.data() + ro * Kz, rn * Kz);
      ew.part(q, send_wts_.data() + so * Kz, sn * Kz, recv_wts_.data() + ro * Kz, rn * Kz);
    }
    DEEPSHOCK_RETURN_IF_ERROR(exchange(ex, stream, st));
    DEEPSHOCK_RETURN_IF_ERROR(exchange(ei, stream, st));
    DEEPSHOCK_RETURN_IF_ERROR(exchange(ew, stream, st));

    // 4-5. The experts on the received rows; their valid slot rows back, per source in order.
    if (rows_in > 0) {
      const int Rr = static_cast<int>(rows_in);
      moe::RunOptions ro;
      ro.check_ids = false;  // the plan kernel wrote them: in [-1, held)
      DEEPSHOCK_RETURN_IF_ERROR(expert_.run_slots(moe::LayerInputs<T>{recv_rows_.data(), Rr, 0, nullptr}, recv_ids_.data(),
                                                  recv_wts_.data(), routed_only(w), slot_rows_.data(), expert_ws_.data(), expert_ws_.size(),
                                                  stream, ro));
      DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_valid_slots_kernel,
                                       {dim3(static_cast<unsigned>((rows_in + 1 + detail::kEpThreads - 1) / detail::kEpThreads)),
                                        dim3(detail::kEpThreads), 0, stream},
                                       recv_ids_.data(), static_cast<long long>(rows_in), kK, ret_count_.data()));
      DEEPSHOCK_RETURN_IF_ERROR(scan_.run(ret_count_.data(), ret_pos_.data(), static_cast<long long>(rows_in) + 1, stream));
      DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_return_pack_kernel,
                                       {dim3(static_cast<unsigned>(Rr)), dim3(detail::kEpThreads), 0, stream}, recv_ids_.data(),
                                       slot_rows_.data(), ret_pos_.data(), H, kK, static_cast<int>(C), static_cast<long long>(Cr),
                                       ret_send_.data()));
      if (count_loads) DEEPSHOCK_RETURN_IF_ERROR(count_load(rows_in, stream, st));
    }
    Exchange eb(R);
    for (int q = 0; q < R; ++q) {
      const std::size_t qz = static_cast<std::size_t>(q);
      // Source q's rows (its assignments to this rank) go back; rank q's rows for this rank's
      // assignments there come in.
      eb.part(q, ret_send_.data() + recv_asg[qz] * Hz, (recv_asg[qz + 1] - recv_asg[qz]) * Hz, ret_recv_.data() + send_asg[qz] * Hz,
              (send_asg[qz + 1] - send_asg[qz]) * Hz);
    }
    DEEPSHOCK_RETURN_IF_ERROR(exchange(eb, stream, st));
    if (Tn == 0) return Status::success();

    // 6. Home: the rows in slot order, the shared expert and the combine.
    DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::ep_scatter_kernel,
                                     {dim3(static_cast<unsigned>(Tn)), dim3(detail::kEpThreads), 0, stream}, ret_recv_.data(), dest_.data(),
                                     asg_pos_.data(), Tn, H, kK, static_cast<long long>(Cr), slot_home_.data(), position_.data()));
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
    DEEPSHOCK_RETURN_IF_ERROR(sync(stream));
    for (const int l : ids)
      if (l >= 0 && static_cast<std::size_t>(l) < st.expert_load.size()) ++st.expert_load[static_cast<std::size_t>(l)];
    return Status::success();
  }

  X& x_;
  Placement pl_;
  gate::RouterOptions options_;
  bool fixed_;
  int max_recv_;
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
