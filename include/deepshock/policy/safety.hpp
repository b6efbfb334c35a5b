// deepshock/policy/safety.hpp — safety filters for generation, as logits policies.
//
// Each type is a LogitsPolicy (policy/concept.hpp): combine them with policy::Pipeline and run
// them with policy::run_pipeline, one fused pass over [B, V] logits. Pointers in Params are
// device pointers (host pointers for the host reference). Bit masks use W = ceil(V / 32) words
// per row; bit (c & 31) of word c >> 5 stands for column c.
//
//   TokenBan                 ban mask [W] uint32 shared by every row; set bit -> -inf.
//   AllowMask                constrained decoding: int32 words [B, W]; bit 1 = allowed, else -inf.
//   RepetitionPenalty        x < 0 ? x * p : x / p once for every token seen (count > 0).
//   FrequencyPresencePenalty x - (f * count + p * [count > 0]), count from the same table.
//   SequenceBan              multi-token bad words: per-row ban mask [B, W] prepared by
//                            prepare_sequence_ban() from each row's token history; set bit -> -inf.
//   GreenListWatermark       Kirchenbauer et al. 2023: + delta on the green list of prev_token[row].
//
// Token counts (both penalties) are a dense int32 table [B, row_stride] (row_stride >= V):
// counts[b * row_stride + v] = occurrences of token v in row b's context. A dense table keeps
// `apply` a single load per element (a compact list would need a search per element);
// build_token_counts() fills it from a token history on the device.
//
// The watermark's green list is a keyed integer hash, identical on host and device:
//   h = mix(mix(key ^ G1 * (prev + 1)) + G2 * (col + 1)),  mix = splitmix64's finaliser,
//   green(col) <=> (h >> 40) * 2^-24 < gamma            (G1, G2: 64-bit odd constants)
// so a fraction ~gamma of the vocabulary is green for each (key, previous token).
// Detection: watermark_score() re-derives each token's list from its predecessor and returns
// z = (G - gamma T) / sqrt(T gamma (1 - gamma)) over T scored tokens; z >= 4 flags a watermark.
// The context is one previous token (Kirchenbauer et al.'s h = 1 scheme), the only one built in.
// A caller wanting a wider context can pass a 32-bit hash of the last tokens as prev_token and
// score with watermark_is_green() on the same values (watermark_score() derives prev from the
// preceding token itself). Detection runs on the host: scoring a finished text is not a hot loop.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/policy/concept.hpp"

namespace deepshock::safety {

/// Words of a one-row bit mask over `vocab` columns: ceil(vocab / 32).
DEEPSHOCK_HOST_DEVICE constexpr int mask_words(int vocab) { return vocab / 32 + (vocab % 32 != 0 ? 1 : 0); }

namespace detail {
DEEPSHOCK_HOST_DEVICE constexpr float neg_inf() { return deepshock::detail::bits_to_float(0xFF800000u); }
DEEPSHOCK_HOST_DEVICE constexpr bool bit_set(std::uint32_t word, int col) { return ((word >> (col & 31)) & 1u) != 0; }
/// "<field>: expected N words<per>, got M" unless got == ceil(vocab / 32).
inline Status check_words(const char* field, const char* per, int got, int vocab) {
  if (got == mask_words(vocab)) return Status::success();
  return Status::invalid_argument(field, "expected " + std::to_string(mask_words(vocab)) + " words" + per + ", got " + std::to_string(got));
}
inline Status check_counts(const int* counts, int row_stride, int vocab) {
  if (counts == nullptr) return Status::invalid_argument("counts", "must not be null");
  if (row_stride < vocab)
    return Status::invalid_argument("row_stride", "must be >= vocab (" + std::to_string(vocab) + "), got " + std::to_string(row_stride));
  return Status::success();
}
}  // namespace detail

/// Bans single tokens in every row: logit -> -inf where the shared mask's bit is set.
struct TokenBan {
  static constexpr const char* kName = "TokenBan";
  struct Params {
    const std::uint32_t* ban_mask = nullptr;  ///< [W] words; bit set = banned
    int words = 0;                            ///< must equal ceil(V / 32)
  };
  static Status validate(const Params& p, int rows, int vocab) {
    if (p.ban_mask == nullptr) return Status::invalid_argument("ban_mask", "must not be null");
    return detail::check_words("ban_mask", "", p.words, vocab);
  }
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) {
    return detail::bit_set(p.ban_mask[col >> 5], col) ? detail::neg_inf() : x;
  }
};

/// Constrained decoding: only allowed tokens keep their logit (others -> -inf).
struct AllowMask {
  static constexpr const char* kName = "AllowMask";
  struct Params {
    const std::int32_t* allow_mask = nullptr;  ///< [B, words_per_row] int32 words; bit 1 = allowed
    int words_per_row = 0;                     ///< must equal ceil(V / 32)
  };
  static Status validate(const Params& p, int rows, int vocab) {
    if (p.allow_mask == nullptr) return Status::invalid_argument("allow_mask", "must not be null");
    return detail::check_words("allow_mask", " per row", p.words_per_row, vocab);
  }
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) {
    const auto w = static_cast<std::uint32_t>(p.allow_mask[static_cast<std::size_t>(row) * p.words_per_row + (col >> 5)]);
    return detail::bit_set(w, col) ? x : detail::neg_inf();
  }
};

/// CTRL-style repetition penalty (Keskar et al. 2019, as in HF transformers): each token seen
/// at least once gets x < 0 ? x * penalty : x / penalty, whatever its count.
struct RepetitionPenalty {
  static constexpr const char* kName = "RepetitionPenalty";
  struct Params {
    const int* counts = nullptr;  ///< [B, row_stride] token counts (see the file comment)
    int row_stride = 0;           ///< elements between rows of counts, >= V
    float penalty = 1.0f;         ///< > 0 and finite; 1 = no change, > 1 discourages repeats
  };
  static Status validate(const Params& p, int rows, int vocab) {
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_counts(p.counts, p.row_stride, vocab));
    if (!(p.penalty > 0.0f) || !std::isfinite(p.penalty))
      return Status::invalid_argument("penalty", "must be finite and > 0, got " + std::to_string(p.penalty));
    return Status::success();
  }
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) {
    if (p.counts[static_cast<std::size_t>(row) * p.row_stride + col] <= 0) return x;
    return x < 0.0f ? x * p.penalty : x / p.penalty;
  }
};

/// OpenAI-style frequency and presence penalties: x - (frequency * count + presence * [count > 0]).
/// Computed as x - fmaf(frequency, count, presence or 0) on host and device alike.
struct FrequencyPresencePenalty {
  static constexpr const char* kName = "FrequencyPresencePenalty";
  struct Params {
    const int* counts = nullptr;  ///< [B, row_stride] token counts
    int row_stride = 0;           ///< >= V
    float frequency = 0.0f;       ///< finite
    float presence = 0.0f;        ///< finite
  };
  static Status validate(const Params& p, int rows, int vocab) {
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_counts(p.counts, p.row_stride, vocab));
    if (!std::isfinite(p.frequency)) return Status::invalid_argument("frequency", "must be finite");
    if (!std::isfinite(p.presence)) return Status::invalid_argument("presence", "must be finite");
    return Status::success();
  }
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) {
    const int c = p.counts[static_cast<std::size_t>(row) * p.row_stride + col];
    if (c <= 0) return x;
    return x - fmaf(p.frequency, static_cast<float>(c), p.presence);
  }
};

/// Multi-token bad words: -inf for every token that would complete a banned sequence given
/// the row's history. The per-row mask comes from prepare_sequence_ban() (or
/// reference::sequence_ban_mask on the host), run before the fused pass.
struct SequenceBan {
  static constexpr const char* kName = "SequenceBan";
  struct Params {
    const std::uint32_t* ban_mask = nullptr;  ///< [B, words_per_row]; bit set = banned
    int words_per_row = 0;                    ///< must equal ceil(V / 32)
  };
  static Status validate(const Params& p, int rows, int vocab) {
    if (p.ban_mask == nullptr) return Status::invalid_argument("ban_mask", "must not be null");
    return detail::check_words("ban_mask", " per row", p.words_per_row, vocab);
  }
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) {
    return detail::bit_set(p.ban_mask[static_cast<std::size_t>(row) * p.words_per_row + (col >> 5)], col) ? detail::neg_inf() : x;
  }
};

/// splitmix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
DEEPSHOCK_HOST_DEVICE constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/// The watermark's keyed hash of (key, previous token, column); see the file comment.
DEEPSHOCK_HOST_DEVICE constexpr std::uint64_t watermark_hash(std::uint64_t key, int prev_token, int col) {
  const std::uint64_t seeded = mix64(key ^ (0x9E3779B97F4A7C15ull * (std::uint64_t(std::uint32_t(prev_token)) + 1u)));
  return mix64(seeded + 0xD1B54A32D192ED03ull * (std::uint64_t(std::uint32_t(col)) + 1u));
}
/// True when `col` is on the green list of `prev_token` under `key` (probability ~gamma).
DEEPSHOCK_HOST_DEVICE constexpr bool watermark_is_green(std::uint64_t key, int prev_token, int col, float gamma) {
  return static_cast<float>(watermark_hash(key, prev_token, col) >> 40) * 0x1p-24f < gamma;
}

/// Green-list watermark (Kirchenbauer et al. 2023, "A Watermark for Large Language Models"):
/// adds delta to the logits of the green list seeded by the row's previous token.
struct GreenListWatermark {
  static constexpr const char* kName = "GreenListWatermark";
  struct Params {
    std::uint64_t key = 0;            ///< secret key
    float gamma = 0.25f;              ///< green share, in (0, 1)
    float delta = 2.0f;               ///< bias added to green logits, finite
    const int* prev_token = nullptr;  ///< [B] each row's previous token (any int; -1 for none)
  };
  static Status validate(const Params& p, int rows, int vocab) {
    if (p.prev_token == nullptr) return Status::invalid_argument("prev_token", "must not be null");
    if (!(p.gamma > 0.0f && p.gamma < 1.0f)) return Status::invalid_argument("gamma", "must be in (0, 1), got " + std::to_string(p.gamma));
    if (!std::isfinite(p.delta)) return Status::invalid_argument("delta", "must be finite");
    return Status::success();
  }
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) {
    return watermark_is_green(p.key, p.prev_token[row], col, p.gamma) ? x + p.delta : x;
  }
};

/// Result of watermark detection.
struct WatermarkScore {
  int scored = 0;  ///< tokens scored (T)
  int green = 0;   ///< of which green (G)
  double z = 0.0;  ///< (G - gamma T) / sqrt(T gamma (1 - gamma)); 0 when T = 0
};

/// Host: scores tokens[0..n) where token i's predecessor is tokens[i - 1] and token 0's is
/// `first_prev` (e.g. the prompt's last token). Tokens outside [0, vocab) are not scored.
inline WatermarkScore watermark_score(const int* tokens, int n, int first_prev, std::uint64_t key, float gamma, int vocab) {
  WatermarkScore s;
  for (int i = 0; i < n; ++i) {
    const int prev = i == 0 ? first_prev : tokens[i - 1];
    if (tokens[i] < 0 || tokens[i] >= vocab) continue;
    ++s.scored;
    s.green += watermark_is_green(key, prev, tokens[i], gamma) ? 1 : 0;
  }
  if (s.scored > 0) {
    const double g = gamma, t = s.scored;
    s.z = (s.green - g * t) / std::sqrt(t * g * (1.0 - g));
  }
  return s;
}
/// Host: the z score of tokens[1..T) given each one's predecessor (T - 1 tokens scored).
inline double watermark_z_score(const int* tokens, int T, std::uint64_t key, float gamma, int vocab) {
  if (T < 2) return 0.0;
  return watermark_score(tokens + 1, T - 1, tokens[0], key, gamma, vocab).z;
}

/// Multi-token banned sequences, concatenated (device arrays): sequence s is
/// tokens[offsets[s] .. offsets[s + 1]). Empty sequences are ignored.
struct BannedSequences {
  const int* tokens = nullptr;
  const int* offsets = nullptr;  ///< [count + 1], non-decreasing, offsets[0] = 0
  int count = 0;
};

/// Token histories [rows, max_len] (row-major, device), with optional per-row lengths
/// (null = every row has max_len tokens; lengths are clamped to [0, max_len]).
struct TokenHistory {
  const int* tokens = nullptr;
  const int* lengths = nullptr;
  int max_len = 0;
};

namespace detail {
inline Status check_history(const TokenHistory& h, int rows, int vocab) {
  if (rows < 0) return Status::invalid_argument("rows", "must not be negative, got " + std::to_string(rows));
  if (vocab <= 0) return Status::invalid_argument("vocab", "must be positive, got " + std::to_string(vocab));
  if (h.max_len < 0) return Status::invalid_argument("history.max_len", "must not be negative");
  if (rows > 0 && h.max_len > 0 && h.tokens == nullptr) return Status::invalid_argument("history.tokens", "must not be null");
  return Status::success();
}
/// Row `row`'s history length, clamped to [0, max_len].
DEEPSHOCK_HOST_DEVICE int history_length(const TokenHistory& h, int row) {
  const int n = h.lengths == nullptr ? h.max_len : h.lengths[row];
  return n < 0 ? 0 : (n > h.max_len ? h.max_len : n);
}
/// True when the last `len - 1` tokens of sequence s equal the end of the row's history and its
/// last token is in [0, vocab): the row must not emit that token next. Returns the token or -1.
DEEPSHOCK_HOST_DEVICE int sequence_ban_token(const BannedSequences& seqs, int s, const int* hist, int hist_len, int vocab) {
  const int begin = seqs.offsets[s], end = seqs.offsets[s + 1];
  const int m = end - begin - 1;  // prefix length
  if (m < 0 || m > hist_len) return -1;
  const int last = seqs.tokens[end - 1];
  if (last < 0 || last >= vocab) return -1;
  for (int i = 0; i < m; ++i)
    if (seqs.tokens[begin + i] != hist[hist_len - m + i]) return -1;
  return last;
}
}  // namespace detail

#if DEEPSHOCK_HAS_KERNELS
namespace detail {
/// One block per row: zero the row's mask, then OR in the bit of every matched sequence
/// (integer OR: the result does not depend on the order).
DEEPSHOCK_KERNEL void sequence_ban_kernel(BannedSequences seqs, TokenHistory hist, int vocab, std::uint32_t* mask) {
  const int row = static_cast<int>(blockIdx.x), W = mask_words(vocab);
  std::uint32_t* m = mask + static_cast<std::size_t>(row) * W;
  for (int w = static_cast<int>(threadIdx.x); w < W; w += static_cast<int>(blockDim.x)) m[w] = 0u;
  __syncthreads();
  const int* h = hist.tokens + static_cast<std::size_t>(row) * hist.max_len;
  const int len = history_length(hist, row);
  for (int s = static_cast<int>(threadIdx.x); s < seqs.count; s += static_cast<int>(blockDim.x)) {
    const int t = sequence_ban_token(seqs, s, h, len, vocab);
    if (t >= 0) atomicOr(&m[t >> 5], 1u << (t & 31));
  }
}
/// One block per row: zero the row's counts, then count its history's tokens in [0, vocab).
DEEPSHOCK_KERNEL void token_counts_kernel(TokenHistory hist, int vocab, int row_stride, int* counts) {
  const int row = static_cast<int>(blockIdx.x);
  int* c = counts + static_cast<std::size_t>(row) * row_stride;
  for (int v = static_cast<int>(threadIdx.x); v < vocab; v += static_cast<int>(blockDim.x)) c[v] = 0;
  __syncthreads();
  const int* h = hist.tokens + static_cast<std::size_t>(row) * hist.max_len;
  const int len = history_length(hist, row);
  for (int i = static_cast<int>(threadIdx.x); i < len; i += static_cast<int>(blockDim.x))
    if (h[i] >= 0 && h[i] < vocab) atomicAdd(&c[h[i]], 1);
}
}  // namespace detail

/// Fills `ban_mask` [rows, ceil(vocab/32)] (device) for SequenceBan: bit t of row b is set when
/// some banned sequence (t_1..t_n) has t_n = t and its first n - 1 tokens equal the last n - 1
/// tokens of row b's history (so one-token sequences ban their token in every row). Sequences
/// whose last token is outside [0, vocab) are ignored. Asynchronous on `stream`.
inline Status prepare_sequence_ban(const BannedSequences& seqs, const TokenHistory& history, int rows, int vocab, std::uint32_t* ban_mask,
                                   rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_history(history, rows, vocab));
  if (seqs.count < 0) return Status::invalid_argument("sequences.count", "must not be negative");
  if (rows == 0) return Status::success();
  if (seqs.count > 0 && seqs.tokens == nullptr) return Status::invalid_argument("sequences.tokens", "must not be null");
  if (seqs.count > 0 && seqs.offsets == nullptr) return Status::invalid_argument("sequences.offsets", "must not be null");
  if (ban_mask == nullptr) return Status::invalid_argument("ban_mask", "must not be null");
  return launch(detail::sequence_ban_kernel, {dim3(static_cast<unsigned>(rows)), dim3(128u), 0, stream}, seqs, history, vocab, ban_mask);
}

/// Fills `counts` [rows, row_stride] (device; columns >= vocab untouched) with each row's
/// token counts for RepetitionPenalty / FrequencyPresencePenalty. Asynchronous on `stream`.
inline Status build_token_counts(const TokenHistory& history, int rows, int vocab, int* counts, int row_stride, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_history(history, rows, vocab));
  if (rows == 0) return Status::success();
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_counts(counts, row_stride, vocab));
  return launch(detail::token_counts_kernel, {dim3(static_cast<unsigned>(rows)), dim3(256u), 0, stream}, history, vocab, row_stride,
                counts);
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::safety
