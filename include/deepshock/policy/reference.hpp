// deepshock/policy/reference.hpp — host references (test oracles and CPU fallback) for the
// logits policies, the safety preparation steps and the selection step.
//
// Plain loops over host memory. The element policies are applied through the same
// `P::apply` the kernel calls, so a pipeline's host and device outputs agree bit for bit; the
// selections use the same noise functions and the same total order (select.hpp), so their ids
// agree exactly. Each function returns the Status the device entry point would return for the
// same arguments (pointers here are host pointers).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/policy/concept.hpp"
#include "deepshock/policy/pipeline.hpp"
#include "deepshock/policy/safety.hpp"
#include "deepshock/policy/select.hpp"

namespace deepshock::policy::reference {

/// out[r, c] = P::apply(params, r, c, in[r, c]) on the host; `out` may equal `in`.
template <class P>
requires LogitsPolicy<P> Status run_pipeline(const typename P::Params& params, const float* in, float* out, int rows, int vocab) {
  DEEPSHOCK_RETURN_IF_ERROR(policy::detail::pipeline_check_args(in, out, rows, vocab, PipelineTuning{}));
  if (rows == 0) return Status::success();
  DEEPSHOCK_RETURN_IF_ERROR(P::validate(params, rows, vocab));
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < vocab; ++c) {
      const std::size_t i = static_cast<std::size_t>(r) * static_cast<std::size_t>(vocab) + static_cast<std::size_t>(c);
      out[i] = P::apply(params, r, c, in[i]);
    }
  return Status::success();
}

/// Host version of safety::prepare_sequence_ban (same semantics, host pointers).
inline Status sequence_ban_mask(const safety::BannedSequences& seqs, const safety::TokenHistory& history, int rows, int vocab,
                                std::uint32_t* ban_mask) {
  DEEPSHOCK_RETURN_IF_ERROR(safety::detail::check_history(history, rows, vocab));
  if (seqs.count < 0) return Status::invalid_argument("sequences.count", "must not be negative");
  if (rows == 0) return Status::success();
  if (ban_mask == nullptr) return Status::invalid_argument("ban_mask", "must not be null");
  const int W = safety::mask_words(vocab);
  for (int r = 0; r < rows; ++r) {
    std::uint32_t* m = ban_mask + static_cast<std::size_t>(r) * W;
    std::fill(m, m + W, 0u);
    const int* h = history.tokens + static_cast<std::size_t>(r) * history.max_len;
    const int len = safety::detail::history_length(history, r);
    for (int s = 0; s < seqs.count; ++s) {
      const int t = safety::detail::sequence_ban_token(seqs, s, h, len, vocab);
      if (t >= 0) m[t >> 5] |= 1u << (t & 31);
    }
  }
  return Status::success();
}

/// Host version of safety::build_token_counts.
inline Status token_counts(const safety::TokenHistory& history, int rows, int vocab, int* counts, int row_stride) {
  DEEPSHOCK_RETURN_IF_ERROR(safety::detail::check_history(history, rows, vocab));
  if (rows == 0) return Status::success();
  DEEPSHOCK_RETURN_IF_ERROR(safety::detail::check_counts(counts, row_stride, vocab));
  for (int r = 0; r < rows; ++r) {
    int* c = counts + static_cast<std::size_t>(r) * row_stride;
    std::fill(c, c + vocab, 0);
    const int* h = history.tokens + static_cast<std::size_t>(r) * history.max_len;
    const int len = safety::detail::history_length(history, r);
    for (int i = 0; i < len; ++i)
      if (h[i] >= 0 && h[i] < vocab) ++c[h[i]];
  }
  return Status::success();
}

/// Host version of policy::noisy_topk: sort each row's columns by (score, column).
inline Status noisy_topk(const float* logits, int rows, int vocab, int k, Noise noise, float scale, std::uint64_t seed, int* ids,
                         float* values) {
  DEEPSHOCK_RETURN_IF_ERROR(policy::detail::select_check(logits, rows, vocab, k, noise, scale, ids));
  std::vector<int> order(static_cast<std::size_t>(rows > 0 ? vocab : 0));
  std::vector<float> score(order.size());
  for (int r = 0; r < rows; ++r) {
    const float* x = logits + static_cast<std::size_t>(r) * static_cast<std::size_t>(vocab);
    for (int c = 0; c < vocab; ++c)
      score[static_cast<std::size_t>(c)] = noise == Noise::none ? x[c] : select_score(noise, scale, seed, r, c, x[c]);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
      return select_ranks_before(score[static_cast<std::size_t>(a)], a, score[static_cast<std::size_t>(b)], b);
    });
    for (int i = 0; i < k; ++i) {
      const std::size_t o = static_cast<std::size_t>(r) * static_cast<std::size_t>(k) + static_cast<std::size_t>(i);
      ids[o] = order[static_cast<std::size_t>(i)];
      if (values != nullptr) values[o] = x[order[static_cast<std::size_t>(i)]];
    }
  }
  return Status::success();
}

/// Host version of policy::topk.
inline Status topk(const float* logits, int rows, int vocab, int k, int* ids, float* values) {
  return noisy_topk(logits, rows, vocab, k, Noise::none, 0.0f, 0, ids, values);
}
/// Host version of policy::sample.
inline Status sample(const float* logits, int rows, int vocab, std::uint64_t seed, int* ids) {
  return noisy_topk(logits, rows, vocab, 1, Noise::gumbel, 1.0f, seed, ids, nullptr);
}
/// Host version of policy::report_noisy_max.
inline Status report_noisy_max(const float* scores, int rows, int vocab, const PrivacyBudget& budget, Noise noise, std::uint64_t seed,
                               int* ids) {
  DEEPSHOCK_RETURN_IF_ERROR(policy::detail::privacy_check(budget));
  DEEPSHOCK_RETURN_IF_ERROR(policy::detail::noisy_max_noise_check(noise));
  return noisy_topk(scores, rows, vocab, 1, noise, noisy_max_scale(budget), seed, ids, nullptr);
}
/// Host version of policy::private_topk.
inline Status private_topk(const float* scores, int rows, int vocab, int k, const PrivacyBudget& budget, std::uint64_t seed, int* ids) {
  DEEPSHOCK_RETURN_IF_ERROR(policy::detail::privacy_check(budget));
  return noisy_topk(scores, rows, vocab, k, Noise::gumbel, private_topk_scale(budget, k), seed, ids, nullptr);
}

}  // namespace deepshock::policy::reference
