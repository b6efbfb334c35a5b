// deepshock/moe/layer_plan.hpp — the workspace of moe::Layer (layer.hpp): where each piece of
// a run of T tokens lives (router scratch, routing, dispatch, the intermediate and output rows,
// quantized activations, LoRA rows, stream-K scratch), as 256-byte aligned byte offsets. Sizes
// grow with T, so a workspace sized for T serves every smaller run.
#pragma once

#include <cstddef>

#include "deepshock/gate/router.hpp"
#include "deepshock/lora/adapter.hpp"
#include "deepshock/moe/act_quant.hpp"
#include "deepshock/moe/dispatch.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/moe/grouped_gemm.hpp"

#if DEEPSHOCK_HAS_KERNELS
namespace deepshock::moe::detail {

/// Byte offsets of a Layer's workspace pieces for a run of T tokens (256-byte aligned).
struct LayerPlan {
  std::size_t router = 0, router_bytes = 0, ids = 0, weights = 0, counts = 0, offsets = 0, tile_offsets = 0, sorted_token = 0,
              sorted_slot = 0, slot_position = 0, bad_ids = 0, dispatch = 0, dispatch_bytes = 0, h = 0, out = 0, shared_h = 0,
              shared_out = 0, sk_partials = 0, sk_tickets = 0, sk_ticket_count = 0, xq = 0, xq_scale = 0, hq = 0, hq_scale = 0,
              shared_hq = 0, shared_hq_scale = 0, lora_u = 0, lora_rows = 0, shared_lora_u = 0, shared_lora_rows = 0, total = 0;
};

/// The largest T' <= tokens whose T' * per_token assignments over `groups` take the decode
/// tiles (Tuning::use_decode holds below a threshold), or 0.
template <class Tuning>
int largest_decode_tokens(int tokens, int per_token, int groups) {
  int lo = 0, hi = tokens;
  while (lo < hi) {
    const int mid = lo + (hi - lo + 1) / 2;
    if (Tuning::use_decode(static_cast<long long>(mid) * per_token, groups)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/// The workspace of a Layer<Gate, ExpertT, T, Combine, Tuning> with `dims` computing `groups`
/// experts, for a run of `tokens` tokens.
template <class Gate, class ExpertT, class T, class Combine, class Tuning>
LayerPlan layer_plan(const LayerDims& dims, int tokens, int groups) {
  constexpr int kTopK = Gate::kTopK, kExperts = Gate::kExperts, kRank = ExpertT::adapter::kRank;
  constexpr bool kStreamK = Tuning::kDecodeSchedule == DecodeSchedule::stream_k;
  using XQ = ActQuant<T, typename ExpertT::codec>;
  LayerPlan p;
  if (tokens <= 0) return p;
  const std::size_t Tn = static_cast<std::size_t>(tokens), N = Tn * kTopK;
  const std::size_t H = static_cast<std::size_t>(dims.hidden), I = static_cast<std::size_t>(dims.intermediate);
  const std::size_t Is = static_cast<std::size_t>(dims.shared_intermediate);
  std::size_t at = 0;
  auto take = [&at](std::size_t bytes) {
    const std::size_t here = at;
    at += (bytes + 255) / 256 * 256;
    return here;
  };
  p.router_bytes = gate::Router<Gate>::workspace_bytes(tokens);
  p.router = take(p.router_bytes);
  p.ids = take(N * sizeof(int));
  p.weights = take(N * sizeof(float));
  p.counts = take(kExperts * sizeof(int));
  p.offsets = take((kExperts + 1) * sizeof(int));
  p.tile_offsets = take((kExperts + 1) * sizeof(int));
  p.sorted_token = take(N * sizeof(int));
  p.sorted_slot = take(N * sizeof(int));
  p.slot_position = take(N * sizeof(int));
  p.bad_ids = take(sizeof(int));
  p.dispatch_bytes = dispatch_workspace_bytes(tokens, kTopK, kExperts);
  p.dispatch = take(p.dispatch_bytes);
  p.h = take(N * I * sizeof(T));
  p.out = take((Combine::kDeterministic ? N : Tn) * H * sizeof(float));
  p.shared_h = take(Tn * Is * sizeof(T));
  p.shared_out = take(Is > 0 ? Tn * H * sizeof(float) : 0);
  if constexpr (XQ::kActive) {  // W8A8 / FP8: x and h as one-byte codes with their scales (act_quant.hpp)
    p.xq = take(Tn * H);
    p.xq_scale = take(XQ::scales(Tn, H) * sizeof(float));
    p.hq = take(N * I);
    p.hq_scale = take(XQ::scales(N, I) * sizeof(float));
    p.shared_hq = take(Tn * Is);
    p.shared_hq_scale = take(Is > 0 ? XQ::scales(Tn, Is) * sizeof(float) : 0);
  }
  if constexpr (kRank > 0) {  // LoRA: u = s A x per adapted matrix (gate, up, down) and the rows' adapters
    p.lora_u = take(3 * N * kRank * sizeof(float));
    p.lora_rows = take(2 * N * sizeof(lora::RowAdapter));
    p.shared_lora_u = take(Is > 0 ? 3 * Tn * kRank * sizeof(float) : 0);
    p.shared_lora_rows = take(Is > 0 ? 2 * Tn * sizeof(lora::RowAdapter) : 0);
  }
  if constexpr (kStreamK) {
    // Stream-K scratch of the decode launches: their one-per-tile block counts bound the
    // tickets and (up to kStreamKMaxGrid) the partial tiles. Sized for the largest decode run
    // of at most `tokens` tokens, so that sizes still grow with T (workspace_bytes()).
    using D = typename Tuning::Decode;
    auto tiles = [](long long n) { return (n + D::kBN - 1) / D::kBN; };
    const int t_r = largest_decode_tokens<Tuning>(tokens, kTopK, groups), t_s = largest_decode_tokens<Tuning>(tokens, 1, 1);
    const long long m_r = t_r > 0 ? max_m_tiles(static_cast<long long>(t_r) * kTopK, D::kBM, groups) : 0;
    const long long m_s = t_s > 0 && Is > 0 ? max_m_tiles(t_s, D::kBM, 1) : 0;
    const long long up = m_r * tiles(static_cast<long long>(I)) + m_s * tiles(static_cast<long long>(Is));
    const long long down = (m_r + m_s) * tiles(static_cast<long long>(H));
    const long long blocks = up > down ? up : down;
    p.sk_ticket_count = static_cast<std::size_t>(blocks);
    p.sk_partials = take(streamk_partial_bytes<T, D>(blocks));
    p.sk_tickets = take(p.sk_ticket_count * sizeof(int));
  }
  p.total = at;
  return p;
}

}  // namespace deepshock::moe::detail
#endif  // DEEPSHOCK_HAS_KERNELS
