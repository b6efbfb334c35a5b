// deepshock/serve/layer_executor.hpp — the device MoE layer (moe::Layer) as the batcher's executor
// (serve/batcher.hpp), with one CUDA graph per padded bucket.
//
// Each step's rows, padding mask and adapter ids are copied into device buffers of the layer's
// largest size (the same buffers every step, so that a graph captured once stays valid); y comes
// back the same way. A step whose size is a bucket runs as that bucket's graph: captured on the
// bucket's first step (after one direct run, which loads the modules and sets the kernels'
// attributes outside the capture) and replayed after; other steps, and every step in the
// simulator (which has no graphs), run the layer directly. The layer routes, dispatches and
// combines on the device without a host synchronisation (its run() is capturable); the copies
// and one stream synchronisation per step are the executor's.
//
// Batch invariance (a request's bits as when it runs alone) needs the layer's router built with
// gate::RouterOptions::batch_invariant: otherwise steps of up to 64 tokens project the gate on
// the decode path and larger ones on the fused kernel, whose sums are ordered differently, and a
// near tie can route a token differently. The experts' GEMMs and the combine are invariant as
// they are (tested over decode and prefill tiles).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/serve/batcher.hpp"

namespace deepshock::serve {

template <class LayerT>
class LayerExecutor {
 public:
  using value_type = typename LayerT::value_type;
  using ExpertT = typename LayerT::expert_type;
  static constexpr bool kLora = ExpertT::adapter::kRank > 0;

  /// `w`: the layer's weights in device memory (kept by reference); `buckets`: the batcher's
  /// (BatcherOptions::buckets), each at most layer.dims().max_tokens; graphs: capture them;
  /// `stream`: where to run (null: a stream of the executor's own, since the legacy default
  /// stream cannot be captured).
  LayerExecutor(const LayerT& layer, const moe::LayerWeights<value_type, ExpertT>& w, std::vector<int> buckets, bool graphs = true,
                rt::stream_t stream = nullptr)
      : layer_(layer), w_(w), buckets_(std::move(buckets)), graphs_on_(graphs && !DEEPSHOCK_SIM), stream_(stream), status_(setup()) {}

  Status status() const { return status_; }
  int hidden() const { return layer_.dims().hidden; }
  /// Buckets whose graph has been captured so far.
  int graphs_captured() const {
    int n = 0;
    for (const rt::Graph& g : graphs_) n += g.ready() ? 1 : 0;
    return n;
  }

  Status run(const Step<value_type>& s) {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    const moe::LayerDims& d = layer_.dims();
    if (s.rows < 0 || s.rows > d.max_tokens)
      return Status::out_of_range("step.rows", std::to_string(s.rows) + " exceeds the layer's max_tokens " + std::to_string(d.max_tokens));
    if (s.hidden != d.hidden) return Status::invalid_argument("step.hidden", "differs from the layer's hidden size");
    const std::size_t n = static_cast<std::size_t>(s.rows), H = static_cast<std::size_t>(d.hidden);
    DEEPSHOCK_RETURN_IF_ERROR(x_.copy_from_host(s.x, n * H, stream_));
    DEEPSHOCK_RETURN_IF_ERROR(mask_.copy_from_host(s.token_mask, n, stream_));
    if constexpr (kLora) DEEPSHOCK_RETURN_IF_ERROR(adapters_.copy_from_host(s.adapter_ids, n, stream_));
    moe::LayerInputs<value_type> in{x_.data(), s.rows, 0, mask_.data()};
    if constexpr (kLora) in.adapter_ids = adapters_.data();
    moe::LayerOutputs<value_type> out;
    out.y = y_.data();
    auto direct = [&] { return layer_.run(in, w_, out, ws_.data(), ws_.size(), stream_); };
    const bool bucketed = graphs_on_ && s.bucket >= 0 && static_cast<std::size_t>(s.bucket) < graphs_.size() &&
                          buckets_[static_cast<std::size_t>(s.bucket)] == s.rows;
    const std::size_t b = bucketed ? static_cast<std::size_t>(s.bucket) : 0;
    if (bucketed && graphs_[b].ready()) {
      DEEPSHOCK_RETURN_IF_ERROR(graphs_[b].launch(stream_));
    } else if (bucketed && !capture_failed_[b]) {
      DEEPSHOCK_RETURN_IF_ERROR(direct());  // warm-up outside the capture: this step's result
      DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(stream_));
      // A capture that fails (a driver that refuses it) leaves this bucket to direct runs; the
      // step's result is the warm-up's, already in y.
      if (!graphs_[b].capture(stream_, direct).ok()) capture_failed_[b] = 1;
    } else {
      DEEPSHOCK_RETURN_IF_ERROR(direct());
    }
    DEEPSHOCK_RETURN_IF_ERROR(y_.copy_to_host(s.y, n * H, stream_));
    return rt::stream_synchronize(stream_);
  }

 private:
  Status setup() {
    DEEPSHOCK_RETURN_IF_ERROR(layer_.status());
    const moe::LayerDims& d = layer_.dims();
    for (std::size_t i = 0; i < buckets_.size(); ++i)
      if (buckets_[i] < 1 || buckets_[i] > d.max_tokens)
        return Status::invalid_argument("buckets", "entry " + std::to_string(i) +
                                                       " must be in [1, max_tokens = " + std::to_string(d.max_tokens) + "]");
    const std::size_t T = static_cast<std::size_t>(d.max_tokens) > 0 ? static_cast<std::size_t>(d.max_tokens) : 1;
    DEEPSHOCK_RETURN_IF_ERROR(x_.allocate(T * static_cast<std::size_t>(d.hidden)));
    DEEPSHOCK_RETURN_IF_ERROR(y_.allocate(T * static_cast<std::size_t>(d.hidden)));
    DEEPSHOCK_RETURN_IF_ERROR(mask_.allocate(T));
    if constexpr (kLora) DEEPSHOCK_RETURN_IF_ERROR(adapters_.allocate(T));
    DEEPSHOCK_RETURN_IF_ERROR(ws_.allocate(layer_.workspace_bytes() > 0 ? layer_.workspace_bytes() : 1));
    graphs_.resize(graphs_on_ ? buckets_.size() : 0);
    capture_failed_.assign(graphs_.size(), 0);
    // Streams can be captured, the legacy default stream cannot: without a stream of the
    // caller's, the executor makes its own.
    if (stream_ == nullptr) {
      DEEPSHOCK_RETURN_IF_ERROR(own_stream_.create());
      stream_ = own_stream_.get();
    }
    return Status::success();
  }

  const LayerT& layer_;
  const moe::LayerWeights<value_type, ExpertT>& w_;
  std::vector<int> buckets_;
  bool graphs_on_;
  rt::stream_t stream_;
  rt::DeviceBuffer<value_type> x_, y_;
  rt::DeviceBuffer<std::uint8_t> mask_;
  rt::DeviceBuffer<int> adapters_;
  rt::DeviceBuffer<unsigned char> ws_;
  std::vector<rt::Graph> graphs_;
  std::vector<unsigned char> capture_failed_;
  rt::Stream own_stream_;
  Status status_;  // last: setup() (its initializer) fills the members above
};

}  // namespace deepshock::serve
