// deepshock/moe/layer.hpp — Layer<Gate, Expert, T, Combine>: the forward pass of a sparse MoE
// block on one stream, with one workspace sized up front.
//
//   using Gate  = ds::gate::SoftmaxTopK<ds::Experts<64>, ds::TopK<6>>;       // DeepSeek-V2-Lite
//   using Layer = ds::moe::Layer<Gate, ds::moe::Expert<>, ds::bf16>;           // SwiGLU experts
//   ds::gate::PolicyParams p = ds::gate::default_params<Gate>();
//   p.renormalize = false;                                                      // V2-Lite keeps softmax weights
//   Layer layer({.hidden = 2048, .intermediate = 1408, .shared_intermediate = 2816, .max_tokens = 4096}, p);
//   std::size_t ws = layer.workspace_bytes();                 // size first ...
//   ds::Status st = layer.run(inputs, weights, outputs, workspace, ws, stream);   // ... then run
//
// Stages (semantics in moe/expert.hpp):
//   1. router: gate projection + routing (gate::Router<Gate>; Switch drops tokens over capacity);
//   2. dispatch: stable counting sort of the (token, slot) assignments by expert (moe/dispatch.hpp);
//   3. GEMM 1: per expert, x rows gathered in the tile loads, W1 | W3, activation epilogue ->
//      intermediate h [T*k, I] in expert-sorted order (moe/grouped_gemm.hpp);
//   4. GEMM 2: h . W2^T, scaled by the routing weight, written per (token, slot) (ordered) or
//      added atomically into an fp32 accumulator (AtomicCombine);
//   5. shared expert: the same two GEMMs over all tokens, in the same launches as stages 3 and 4
//      when it uses the same tile shape (at decode: every SM streams weights at once);
//   6. combine: y[t] = sum_j (slot order) + g_t * shared, rounded once to T.
// `run_routed` starts at stage 2 with caller-supplied ids and weights. Stages 3-5 as grouped-GEMM
// arguments and launches: layer_mlp.hpp.
// Nothing allocates or synchronises the host (except run_routed's optional id check), and the
// launch grids depend only on T, so a captured CUDA graph replays a run for a fixed T. Run the
// layer once outside the capture first (as engines warm up before capturing): the first launch
// of each kernel loads its module (lazy loading) and raises its shared-memory limit
// (launch.hpp), work that is best kept out of a capture. With the default OrderedCombine the
// output is bitwise reproducible (with a stream-K tuning: on a given GPU configuration, see
// grouped_gemm.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "deepshock/core/status.hpp"
#include "deepshock/gate/concept.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/moe/act_quant.hpp"
#include "deepshock/moe/combine.hpp"
#include "deepshock/moe/dispatch.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/moe/grouped_gemm.hpp"
#include "deepshock/moe/layer_mlp.hpp"
#include "deepshock/moe/layer_plan.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/gate/router.hpp"
#include "deepshock/platform/block.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/runtime.hpp"
#endif

namespace deepshock::moe {

#if DEEPSHOCK_HAS_KERNELS

/// The stages of a run, in order (RunOptions::stop_after).
enum class Stage : int {
  dispatch = 1,  ///< dispatch (the counting sort of the assignments by expert)
  gemm1 = 2,     ///< + grouped GEMM 1 with the activation (routed and shared experts)
  all = 3,       ///< + grouped GEMM 2 and the combine: the whole run
};

/// Per-run options.
struct RunOptions {
  /// run_routed only: check the caller's ids on the device and return invalid_argument for an
  /// id < -1 or >= E. This copies one int to the host and synchronises the stream; inside a CUDA
  /// graph capture that is impossible, and run_routed returns invalid_argument naming
  /// options.check_ids instead of breaking the capture: pass false there (ids outside [0, E)
  /// then just contribute 0).
  bool check_ids = true;
  /// run_routed only, a profiling aid: stop after this stage, so that the stages can be timed by
  /// difference (bench_moe's through_dispatch/ and through_gemm1/ rows). y is written only by
  /// Stage::all; the stages run are exactly those of a whole run.
  Stage stop_after = Stage::all;
  /// run and run_routed: launch dispatch, the grouped GEMMs and the combine (and the router's
  /// routing kernel after its projection) as programmatic dependent launches
  /// (LaunchConfig::dependent, platform/launch.hpp): on Hopper and newer each may be scheduled
  /// during the previous kernel's tail and waits for it before touching memory, which shortens
  /// the gaps between the layer's kernels (decode). The results are bitwise the same either
  /// way; false launches every kernel in plain stream order (for comparisons and profiling).
  /// For the layer's router this replaces the constructor's RouterOptions::dependent_launch.
  bool dependent_launch = true;
};

/// The MoE layer. T: bf16, fp16 (tensor cores) or float (exact testing).
/// Expert parallelism: with RouterOptions::expert_begin / expert_end = [b, e) the layer is one
/// rank's share: the router still scores all E experts (ids and weights stay global), only
/// assignments to experts in [b, e) are computed, and LayerWeights' w1 / w3 / w2 hold just
/// those e - b experts (expert b first). expert_counts stays [E], zero outside the range.
/// Tuning: the grouped GEMMs' tile shapes (GemmTuningOf<DecodeTile, PrefillTile>).
template <class Gate, class ExpertT = Expert<>, class T = bf16, class Combine = OrderedCombine, class Tuning = GemmTuning>
class Layer {
  static_assert(gate::GatePolicy<Gate>, "deepshock::moe::Layer: Gate is not a gating policy (gate::GatePolicy, gate/concept.hpp).");

 public:
  static constexpr int kExperts = Gate::kExperts;
  static constexpr int kTopK = Gate::kTopK;
  using value_type = T;
  using gate_type = Gate;
  using expert_type = ExpertT;
  using Act = typename ExpertT::activation;
  static_assert(detail::layer_type_v<T>, "deepshock::moe::Layer: the activation type must be float, bf16 or fp16.");
  using Codec = typename ExpertT::codec;
  using XQ = ActQuant<T, Codec>;  ///< the activations' quantization (W8A8, FP8), if the codec asks for one
  static_assert(quant::WeightCodec<Codec>, "deepshock::moe::Layer: the expert's codec is not a quant::WeightCodec (quant/codec.hpp).");
  static_assert(Codec::kIdentity || quant::act_fp8_v<Codec> || !detail::uses_sw128_kernel_v<T, typename Tuning::Prefill>,
                "deepshock::moe::Layer: the Hopper WgmmaTile prefill tiles take unquantized or FP8 (Fp8BlockA8) experts; use "
                "GemmTuning (or other GemmTile tiles) with other codecs.");
  static_assert(!quant::grouped_v<Codec> || sizeof(T) == 2, "deepshock::moe::Layer: group-wise codecs (Int4Group, Mxfp4, Nvfp4) decode to "
                                                            "bf16 / fp16 tensor-core fragments: use bf16 or fp16 activations.");
  static_assert(!quant::grouped_v<Codec> || ExpertT::gate_up_layout::kStep == 1,
                "deepshock::moe::Layer: group-wise codecs stage scales of contiguous output channels: use gate_up::Separate or Halves, not "
                "Interleaved.");
  static_assert(!ActQuant<T, Codec>::kActive || sizeof(T) == 2,
                "deepshock::moe::Layer: codecs with quantized activations (W8A8 int8, FP8) quantize bf16 / fp16 activations: use bf16 or "
                "fp16 activations.");
  static_assert(!Gate::kNoisy,
                "deepshock::moe::Layer: NoisyTopK is a training-time router; route it with gate::Router and call run_routed.");
  static constexpr bool kStreamK = Tuning::kDecodeSchedule == DecodeSchedule::stream_k;
  static_assert(!kStreamK || !std::is_same_v<typename Tuning::Decode, typename Tuning::Prefill>,
                "deepshock::moe::Layer: a stream-K decode schedule needs a decode tile type of its own (not the prefill tile).");

  explicit Layer(LayerDims dims, gate::PolicyParams params = gate::default_params<Gate>(), gate::RouterOptions options = {})
      : dims_(dims),
        router_(params, options),
        begin_(options.expert_begin),
        end_(options.expert_end < 0 ? kExperts : options.expert_end),
        status_(check_config(dims, options)) {}

  const LayerDims& dims() const noexcept { return dims_; }
  const gate::Router<Gate>& router() const noexcept { return router_; }
  /// The constructor's check of the sizes; every run returns it too.
  const Status& status() const noexcept { return status_; }
  /// The experts this layer computes (and holds weights for): [expert_begin(), expert_end()).
  int expert_begin() const noexcept { return begin_; }
  int expert_end() const noexcept { return end_; }

  /// Workspace bytes for runs of up to dims().max_tokens tokens (256-byte aligned pieces).
  std::size_t workspace_bytes() const { return plan(dims_.max_tokens).total; }
  /// Workspace bytes for runs of up to `tokens` tokens (a run of T tokens needs
  /// workspace_bytes(T); sizes grow with T; 0 for T = 0, whose run needs no workspace).
  std::size_t workspace_bytes(int tokens) const { return plan(tokens).total; }

  /// The kernels `run` (with_router) or `run_routed` takes for these inputs, in words (logs,
  /// demos): the router's path, dispatch, the expert GEMMs' tiles and where the shared expert
  /// runs, and the combine.
  std::string kernel_plan(const LayerInputs<T>& in, const LayerWeights<T, ExpertT>& w, bool with_router = true) const {
    if (in.tokens <= 0) return "nothing (T = 0)";
    const long long n = static_cast<long long>(in.tokens) * kTopK;
    std::string s;
    if (with_router) {
      const gate::GateInputs<T> gi{in.x, w.w_gate, nullptr, in.tokens, dims_.hidden, w.gate_bias, w.gate_bias_size, w.w_gate_bias};
      s += "router: " + gate::Router<Gate>::path(gi, router_.options().batch_invariant) + "; ";
    }
    s += std::string("dispatch: ") + (detail::dispatch_chunks(n) == 1 ? "one kernel" : "three kernels (count, scan, place)") + "; ";
    auto tiles = [](bool decode) {
      auto shape = [](auto tile) {
        using Tile = decltype(tile);
        std::string math;
        if constexpr (detail::uses_sw128_kernel_v<T, Tile>)
          math = Tile::kUseWgmma ? ", wgmma in sm_90a builds, else mma.sync" : ", swizzled, mma.sync";
        return std::to_string(Tile::kBM) + "x" + std::to_string(Tile::kBN) + " (" + std::to_string(Tile::kStages) + "-stage cp.async" +
               math + ")";
      };
      return decode ? "decode tiles " + shape(typename Tuning::Decode{}) + (kStreamK ? " stream-K" : "")
                    : "prefill tiles " + shape(typename Tuning::Prefill{});
    };
    const TileChoice choice = choose_tiles(in.tokens);
    s += "expert GEMMs: " + tiles(choice.routed_decode);
    if (dims_.shared_intermediate > 0)
      s += choice.routed_decode == choice.shared_decode ? ", shared expert in the same launches"
                                                        : ", shared expert in its own launches with " + tiles(choice.shared_decode);
    if constexpr (!Codec::kIdentity)
      s += std::string(", weights ") + Codec::kName + (XQ::kActive ? std::string(" (") + XQ::kWhat + ")" : "");
    if constexpr (ExpertT::gate_up_layout::kFused) s += std::string(", gate/up fused (") + ExpertT::gate_up_layout::kName + ")";
    if constexpr (ExpertT::adapter::kRank > 0)
      s += ", LoRA up to rank " + std::to_string(ExpertT::adapter::kRank) +
           " (a shrink kernel before each GEMM, the expand in the GEMM epilogues)";
    s += std::string("; combine: ") + (Combine::kDeterministic ? "ordered" : "atomic");
    return s;
  }

  /// Router -> dispatch -> experts -> combine (device pointers). x must be dense (x_stride 0 or H).
  /// Of `options` only dependent_launch applies (check_ids and stop_after are run_routed's).
  Status run(const LayerInputs<T>& in, const LayerWeights<T, ExpertT>& w, const LayerOutputs<T>& out, void* workspace,
             std::size_t workspace_size, rt::stream_t stream, RunOptions options = {}) const {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_layer_run(dims_, w, in, out, /*routed=*/false, /*need_align=*/true));
    if (in.x_stride != 0 && in.x_stride != dims_.hidden)
      return Status::invalid_argument("x_stride", "the router reads x densely: must be 0 or hidden; use run_routed for strided x");
    DEEPSHOCK_RETURN_IF_ERROR(check_workspace(workspace, workspace_size, in.tokens));
    const Plan p = plan(in.tokens);
    auto* base = static_cast<unsigned char*>(workspace);
    if (out.dropped_count != nullptr) DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(out.dropped_count, 0, sizeof(int), stream));
    if (in.tokens == 0) return zero_counts(out, stream);
    DEEPSHOCK_RETURN_IF_ERROR(clear_scratch(out, p, base, in.tokens, stream));  // before the router: no memset between the layer's kernels
    int* ids = out.topk_ids != nullptr ? out.topk_ids : reinterpret_cast<int*>(base + p.ids);
    float* weights = out.topk_weights != nullptr ? out.topk_weights : reinterpret_cast<float*>(base + p.weights);
    gate::RoutingOutputs ro;
    ro.topk_ids = ids;
    ro.topk_weights = weights;
    if constexpr (Gate::kCapacity) ro.dropped_count = out.dropped_count;
    gate::GateInputs<T> gi{in.x, w.w_gate, nullptr, in.tokens, dims_.hidden, w.gate_bias, w.gate_bias_size, w.w_gate_bias};
    gate::Router<Gate> router = router_;
    if (in.token_mask != nullptr || options.dependent_launch != router_.options().dependent_launch) {
      gate::RouterOptions o = router_.options();
      if (in.token_mask != nullptr) o.token_mask = in.token_mask;
      o.dependent_launch = options.dependent_launch;
      router = gate::Router<Gate>(router_.params(), o);
    }
    DEEPSHOCK_RETURN_IF_ERROR(router.run(gi, ro, base + p.router, p.router_bytes, stream));
    return experts(in, w, out, ids, weights, base, p, stream, Stage::all, options.dependent_launch);
  }

  /// Dispatch -> experts -> combine with caller-supplied routing: ids [T, k] (-1 = none) and
  /// weights [T, k] (device). out.topk_ids / topk_weights / dropped_count are not used.
  Status run_routed(const LayerInputs<T>& in, const int* topk_ids, const float* topk_weights, const LayerWeights<T, ExpertT>& w,
                    const LayerOutputs<T>& out, void* workspace, std::size_t workspace_size, rt::stream_t stream,
                    RunOptions options = {}) const {
    return routed_run(in, topk_ids, topk_weights, w, out, workspace, workspace_size, stream, options, {});
  }

  /// Expert parallelism, the expert side (ep/device_ep.hpp): the routed experts on rows that
  /// other ranks sent, with no shared expert and no combine. ids [T, k] index this layer's
  /// experts as run_routed's do (-1: a slot served elsewhere), weights [T, k]; slot_rows
  /// [T*k, H] (fp32, device) receives each valid slot's weighted output: the very row the whole
  /// layer's combine would add for it (rows of other slots are not written). Options as run_routed's.
  Status run_slots(const LayerInputs<T>& in, const int* topk_ids, const float* topk_weights, const LayerWeights<T, ExpertT>& w,
                   float* slot_rows, void* workspace, std::size_t workspace_size, rt::stream_t stream, RunOptions options = {}) const {
    static_assert(Combine::kDeterministic, "deepshock::moe::Layer::run_slots: slot rows need the ordered combine (OrderedCombine).");
    if (in.tokens > 0 && slot_rows == nullptr) return Status::invalid_argument("slot_rows", "must not be null");
    if (options.stop_after != Stage::all) return Status::invalid_argument("options.stop_after", "run_slots runs GEMM 2: leave Stage::all");
    LayerOutputs<T> none;
    none.y = reinterpret_cast<T*>(slot_rows);  // not written: only checked for null
    SlotIo io;
    io.rows_out = slot_rows;
    return routed_run(in, topk_ids, topk_weights, w, none, workspace, workspace_size, stream, options, io);
  }

  /// Expert parallelism, the home side: y = the combine of slot rows computed elsewhere —
  /// slot_rows [T*k, H] (fp32, weighted), the row of slot (t, j) added in slot order where
  /// slot_position[t*k + j] >= 0 — and of this layer's shared expert on in.x: bitwise what run
  /// gives when the rows are run_slots' rows for the same tokens. No router and no routed experts
  /// run; of `options` only dependent_launch applies.
  Status run_combine(const LayerInputs<T>& in, const float* slot_rows, const int* slot_position, const LayerWeights<T, ExpertT>& w,
                     const LayerOutputs<T>& out, void* workspace, std::size_t workspace_size, rt::stream_t stream,
                     RunOptions options = {}) const {
    static_assert(Combine::kDeterministic, "deepshock::moe::Layer::run_combine: slot rows need the ordered combine (OrderedCombine).");
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_layer_run(dims_, w, in, out, /*routed=*/true, /*need_align=*/true));
    DEEPSHOCK_RETURN_IF_ERROR(check_workspace(workspace, workspace_size, in.tokens));
    if (in.tokens == 0) return Status::success();
    if (slot_rows == nullptr) return Status::invalid_argument("slot_rows", "must not be null");
    if (slot_position == nullptr) return Status::invalid_argument("slot_position", "must not be null");
    if (in.token_mask != nullptr)
      return Status::invalid_argument("token_mask", "run_combine takes no mask: give padding slots position -1");
    if (out.expert_counts != nullptr) return Status::invalid_argument("out.expert_counts", "run_combine routes nothing: pass null");
    const Plan p = plan(in.tokens);
    auto* base = static_cast<unsigned char*>(workspace);
    DEEPSHOCK_RETURN_IF_ERROR(clear_scratch(out, p, base, in.tokens, stream));
    SlotIo io;
    io.routed = false;
    io.rows_in = slot_rows;
    io.position_in = slot_position;
    return experts(in, w, out, nullptr, nullptr, base, p, stream, Stage::all, options.dependent_launch, io);
  }

 private:
  /// Where the routed rows go and come from: the whole layer (default); the expert side of
  /// expert parallelism (rows_out: GEMM 2 writes there; no shared expert, no combine); or its
  /// home side (routed = false: no dispatch, no routed experts; the combine reads rows_in where
  /// position_in >= 0).
  struct SlotIo {
    bool routed = true;
    float* rows_out = nullptr;
    const float* rows_in = nullptr;
    const int* position_in = nullptr;
  };

  /// run_routed (and run_slots, with `io`): the checks, then the experts.
  Status routed_run(const LayerInputs<T>& in, const int* topk_ids, const float* topk_weights, const LayerWeights<T, ExpertT>& w,
                    const LayerOutputs<T>& out, void* workspace, std::size_t workspace_size, rt::stream_t stream, RunOptions options,
                    const SlotIo& io) const {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_layer_run(dims_, w, in, out, /*routed=*/true, /*need_align=*/true));
    DEEPSHOCK_RETURN_IF_ERROR(check_workspace(workspace, workspace_size, in.tokens));
    if (in.tokens > 0 && topk_ids == nullptr) return Status::invalid_argument("topk_ids", "must not be null");
    if (in.tokens > 0 && topk_weights == nullptr) return Status::invalid_argument("topk_weights", "must not be null");
    if (in.token_mask != nullptr)
      return Status::invalid_argument("token_mask", "run_routed takes the routing as given: give padding tokens ids of -1");
    if (options.stop_after != Stage::dispatch && options.stop_after != Stage::gemm1 && options.stop_after != Stage::all)
      return Status::invalid_argument("options.stop_after",
                                      "must be Stage::dispatch, gemm1 or all, got " + std::to_string(static_cast<int>(options.stop_after)));
    const Plan p = plan(in.tokens);
    auto* base = static_cast<unsigned char*>(workspace);
    if (in.tokens == 0) return zero_counts(out, stream);
    if (options.check_ids) {
      bool capturing = false;
      DEEPSHOCK_RETURN_IF_ERROR(rt::stream_is_capturing(stream, capturing));
      if (capturing)
        return Status::invalid_argument("options.check_ids", "the id check synchronises the host, which a CUDA graph capture forbids; "
                                                             "pass RunOptions{.check_ids = false} when capturing");
      int* bad = reinterpret_cast<int*>(base + p.bad_ids);
      const long long n = static_cast<long long>(in.tokens) * kTopK;
      DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(bad, 0, sizeof(int), stream));
      DEEPSHOCK_RETURN_IF_ERROR(launch(kernels::count_bad_ids_kernel, {dim3(static_cast<unsigned>((n + 255) / 256)), dim3(256), 0, stream},
                                       topk_ids, n, kExperts, bad));
      int host_bad = 0;
      DEEPSHOCK_RETURN_IF_ERROR(rt::memcpy_async(&host_bad, bad, sizeof(int), rt::Copy::device_to_host, stream));
      DEEPSHOCK_RETURN_IF_ERROR(rt::stream_synchronize(stream));
      if (host_bad > 0)
        return Status::invalid_argument("topk_ids", std::to_string(host_bad) + " id(s) outside [-1, " + std::to_string(kExperts) +
                                                        ") (-1 = no expert)");
    }
    DEEPSHOCK_RETURN_IF_ERROR(clear_scratch(out, p, base, in.tokens, stream));
    return experts(in, w, out, topk_ids, topk_weights, base, p, stream, options.stop_after, options.dependent_launch, io);
  }

  /// Decode or prefill tiles for the routed experts and for the shared expert of a T-token run.
  struct TileChoice {
    bool routed_decode, shared_decode;
  };
  TileChoice choose_tiles(int tokens) const {
    return {Tuning::use_decode(static_cast<long long>(tokens) * kTopK, end_ - begin_), Tuning::use_decode(tokens, 1)};
  }

  using Plan = detail::LayerPlan;
  Plan plan(int tokens) const { return detail::layer_plan<Gate, ExpertT, T, Combine, Tuning>(dims_, tokens, end_ - begin_); }

  /// The memsets of a run, all before its first kernel, so that none falls between the layer's
  /// kernels (where it would cost the dependent launches their overlap): the stream-K tickets (a
  /// run leaves them zero, but the workspace is the caller's scratch between runs), the atomic
  /// combine's accumulator, and an expert-parallel rank's counts outside its range.
  Status clear_scratch(const LayerOutputs<T>& out, const Plan& p, unsigned char* base, int tokens, rt::stream_t stream) const {
    if (p.sk_ticket_count > 0) DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(base + p.sk_tickets, 0, p.sk_ticket_count * sizeof(int), stream));
    if constexpr (!Combine::kDeterministic)
      DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(base + p.out, 0, static_cast<std::size_t>(tokens) * dims_.hidden * sizeof(float), stream));
    if (local() && out.expert_counts != nullptr) DEEPSHOCK_RETURN_IF_ERROR(zero_counts(out, stream));
    return Status::success();
  }

  Status check_workspace(const void* workspace, std::size_t size, int tokens) const {
    const std::size_t need = workspace_bytes(tokens);
    if (need == 0) return Status::success();
    if (size < need) return Status::resource_exhausted("workspace_size", std::to_string(size) + " bytes, need " + std::to_string(need));
    if (workspace == nullptr) return Status::invalid_argument("workspace", "must not be null (query workspace_bytes)");
    if (reinterpret_cast<std::uintptr_t>(workspace) % 256 != 0) return Status::invalid_argument("workspace", "must be 256-byte aligned");
    return Status::success();
  }

  Status zero_counts(const LayerOutputs<T>& out, rt::stream_t stream) const {
    if (out.expert_counts != nullptr) return rt::memset_async(out.expert_counts, 0, sizeof(int) * kExperts, stream);
    return Status::success();
  }

  using Mlps = detail::LayerMlps<T, ExpertT, Combine, Tuning>;
  static constexpr int kRank = ExpertT::adapter::kRank;

  /// The LoRA inputs of the routed experts (shared: the shared expert's) for a run.
  typename Mlps::LoraIn lora_in(const LayerInputs<T>& in, const LayerWeights<T, ExpertT>& w, long long ldx, unsigned char* base,
                                const Plan& p, bool shared) const {
    typename Mlps::LoraIn l;
    if constexpr (kRank > 0) {
      const std::size_t rows = static_cast<std::size_t>(in.tokens) * (shared ? 1 : kTopK);
      float* u = reinterpret_cast<float*>(base + (shared ? p.shared_lora_u : p.lora_u));
      auto* r = reinterpret_cast<lora::RowAdapter*>(base + (shared ? p.shared_lora_rows : p.lora_rows));
      l = {w.adapter.adapters, w.adapter.count, in.adapter_ids, in.x, ldx, {u, u + rows * kRank, u + 2 * rows * kRank}, {r, r + rows}};
    }
    return l;
  }

  Status experts(const LayerInputs<T>& in, const LayerWeights<T, ExpertT>& w, const LayerOutputs<T>& out, const int* ids,
                 const float* weights, unsigned char* base, const Plan& p, rt::stream_t stream, Stage stop, bool dep,
                 const SlotIo& io = {}) const {
    const int Tn = in.tokens, H = dims_.hidden;
    const long long n = static_cast<long long>(Tn) * kTopK;
    const long long ldx = in.x_stride != 0 ? in.x_stride : H;
    auto at = [base](std::size_t off) { return base + off; };
    // Expert-parallel ranks dispatch the global ids [begin, end) as local experts 0..groups-1
    // (their weights hold only those); counts outside the range are zero.
    const int groups = end_ - begin_;
    DispatchOutputs d;
    d.expert_counts = out.expert_counts != nullptr ? out.expert_counts + begin_ : reinterpret_cast<int*>(at(p.counts));
    d.expert_offsets = reinterpret_cast<int*>(at(p.offsets));
    d.sorted_token = reinterpret_cast<int*>(at(p.sorted_token));
    d.sorted_slot = reinterpret_cast<int*>(at(p.sorted_slot));
    d.slot_position = reinterpret_cast<int*>(at(p.slot_position));
    // The tile shapes are a host decision (from T alone), so dispatch can write the routed
    // GEMMs' m-tile offsets in the same pass.
    const TileChoice choice = choose_tiles(Tn);
    using D = typename Tuning::Decode;
    using P = typename Tuning::Prefill;
    int* tiles = reinterpret_cast<int*>(at(p.tile_offsets));
    d.tile_offsets = tiles;
    d.tile_rows = choice.routed_decode ? D::kBM : P::kBM;
    if (io.routed) DEEPSHOCK_RETURN_IF_ERROR(dispatch(ids, Tn, kTopK, groups, d, at(p.dispatch), p.dispatch_bytes, stream, begin_, dep));
    if (stop == Stage::dispatch) return Status::success();
    const bool up_only = stop == Stage::gemm1;
    float* routed = io.rows_out != nullptr ? io.rows_out : reinterpret_cast<float*>(at(p.out));
    float* shared_out = dims_.shared_intermediate > 0 && io.rows_out == nullptr ? reinterpret_cast<float*>(at(p.shared_out)) : nullptr;
    typename Mlps::HRows h{reinterpret_cast<T*>(at(p.h)), nullptr, nullptr}, hs{reinterpret_cast<T*>(at(p.shared_h)), nullptr, nullptr};
    typename Mlps::ActIn x;
    if constexpr (XQ::kActive) {  // W8A8 / FP8: x to codes first; h's codes are filled between the GEMMs (mlp)
      using Code = typename XQ::Code;
      const typename XQ::Args xq{in.x, ldx, Tn, H, reinterpret_cast<Code*>(at(p.xq)), reinterpret_cast<float*>(at(p.xq_scale))};
      DEEPSHOCK_RETURN_IF_ERROR(XQ::run(xq, stream, dep));
      x = {xq.q, H, xq.scale};
      h.q = reinterpret_cast<Code*>(at(p.hq));
      h.scale = reinterpret_cast<float*>(at(p.hq_scale));
      hs.q = reinterpret_cast<Code*>(at(p.shared_hq));
      hs.scale = reinterpret_cast<float*>(at(p.shared_hq_scale));
    } else {
      x = {in.x, ldx, nullptr};
    }
    const typename Mlps::GemmLaunch l{stream, dep, {reinterpret_cast<float*>(at(p.sk_partials)), reinterpret_cast<int*>(at(p.sk_tickets))}};
    const typename Mlps::LoraIn lr = lora_in(in, w, ldx, base, p, false), ls = lora_in(in, w, ldx, base, p, true);
    // Routed experts (+ shared expert) with tile shapes R and S: the shared expert rides in the
    // same launches when S = R, else it runs on its own afterwards.
    auto run_mlps = [&](auto routed_tile, auto shared_tile) -> Status {
      using R = decltype(routed_tile);
      using S = decltype(shared_tile);
      const auto r =
          Mlps::template routed<R>(dims_, groups, w, x, n, d.expert_offsets, tiles, d.sorted_token, d.sorted_slot, weights, h, routed, lr);
      if (shared_out == nullptr) return Mlps::template mlp<R>(r, nullptr, l, up_only, lr);
      const typename Mlps::SharedMlp sh = Mlps::template shared<S>(dims_, w, x, Tn, hs, shared_out, ls);
      if constexpr (std::is_same_v<R, S>) {
        // One shrink launch serves both families: its batch takes the shared rows from `sh`, and
        // the table and ids are the same.
        return Mlps::template mlp<R>(r, &sh, l, up_only, lr);
      } else {
        DEEPSHOCK_RETURN_IF_ERROR(Mlps::template mlp<R>(r, nullptr, l, up_only, lr));
        return Mlps::template mlp<S>(sh, nullptr, l, up_only, ls);
      }
    };
    // The shared expert alone (the home side of expert parallelism).
    auto run_shared = [&](auto shared_tile) -> Status {
      using S = decltype(shared_tile);
      return Mlps::template mlp<S>(Mlps::template shared<S>(dims_, w, x, Tn, hs, shared_out, ls), nullptr, l, up_only, ls);
    };
    if (!io.routed) {
      if (shared_out != nullptr) DEEPSHOCK_RETURN_IF_ERROR(choice.shared_decode ? run_shared(D{}) : run_shared(P{}));
    } else if (choice.routed_decode) {
      DEEPSHOCK_RETURN_IF_ERROR(choice.shared_decode ? run_mlps(D{}, D{}) : run_mlps(D{}, P{}));
    } else {
      DEEPSHOCK_RETURN_IF_ERROR(choice.shared_decode ? run_mlps(P{}, D{}) : run_mlps(P{}, P{}));
    }
    if (up_only || io.rows_out != nullptr) return Status::success();
    CombineArgs<T> c;
    if constexpr (Combine::kDeterministic) {
      c.slot_out = io.routed ? routed : io.rows_in;
      c.slot_position = io.routed ? d.slot_position : io.position_in;
    } else {
      c.routed_sum = routed;
    }
    c.shared_out = shared_out;
    c.x = in.x;
    c.ldx = ldx;
    c.shared_gate = w.shared_gate_kind == SharedGate::sigmoid ? w.shared_gate : nullptr;
    c.k = kTopK;
    c.hidden = H;
    c.y = out.y;
    c.ldy = out.y_stride != 0 ? out.y_stride : H;
    constexpr int kCombineThreads = 128;
    const unsigned column_blocks = static_cast<unsigned>((H + 4 * kCombineThreads - 1) / (4 * kCombineThreads));
    return launch(kernels::combine_kernel<T, kCombineThreads>,
                  {dim3(static_cast<unsigned>(Tn), column_blocks), dim3(kCombineThreads), 0, stream, dep}, c);
  }

  static Status check_config(const LayerDims& dims, const gate::RouterOptions& o) {
    DEEPSHOCK_RETURN_IF_ERROR((detail::check_layer_dims<T, Codec>(dims)));
    const int end = o.expert_end < 0 ? kExperts : o.expert_end;
    if (!(o.expert_begin >= 0 && o.expert_begin < end && end <= kExperts))
      return Status::invalid_argument("options.expert_begin/expert_end", "need 0 <= begin < end <= " + std::to_string(kExperts) +
                                                                             ", got [" + std::to_string(o.expert_begin) + ", " +
                                                                             std::to_string(o.expert_end) + ")");
    return Status::success();
  }

  /// True when this layer computes only part of the experts (expert parallelism).
  bool local() const noexcept { return begin_ != 0 || end_ != kExperts; }

  LayerDims dims_;
  gate::Router<Gate> router_;
  int begin_ = 0, end_ = kExperts;
  Status status_;
};
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::moe
