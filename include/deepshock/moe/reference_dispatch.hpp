// deepshock/moe/reference_dispatch.hpp — MoE token dispatch (counting sort) on the host.
//
// This header compiles in every mode (plain host compiler, simulator, nvcc) and needs no CUDA.
// It holds what the kernels in moe/dispatch.hpp share with the host:
//   * limits, `DispatchOutputs` and the argument checks (one message per bad argument, e.g.
//     "topk_ids: must not be null"), so the device entry point and the reference reject exactly
//     the same calls;
//   * the plain reference implementation (namespace deepshock::moe::reference): the test oracle
//     and a CPU fallback. It takes host pointers, validates like the device entry point and
//     returns the same Status.
//
// Semantics (the device entry point computes exactly the same integers):
//   * topk_ids is [T, k] row-major int32; assignment a = t * k + j (the "slot") routes token t to
//     expert topk_ids[a]. Ids of -1 mean "no expert"; ids < -1 or >= E are treated like -1 (no
//     error; they are counted in the optional invalid_count, -1 included).
//   * first_expert (default 0; expert parallelism): the E experts dispatched are the global ids
//     [first_expert, first_expert + E); expert e below means global id first_expert + e, and
//     every other id counts as invalid.
//   * expert_counts[e] = number of valid assignments to e; expert_offsets[E + 1] is the exclusive
//     scan (expert_offsets[E] = total valid assignments).
//   * sorted_token / sorted_slot [total] list the valid assignments expert-major; within an
//     expert in increasing slot order (token order, then slot order: a stable counting sort).
//     sorted_slot[p] = t * k + j and sorted_token[p] = t.
//   * slot_position[a] = p, the position of assignment a in the sorted arrays; -1 if invalid.
//   * entries of sorted_token / sorted_slot at positions >= total are left untouched.
//   * tile_offsets (optional) is the exclusive scan of ceil(expert_counts[e] / tile_rows):
//     where expert e's m-tiles start when a grouped GEMM (moe/grouped_gemm.hpp) splits every
//     expert's rows into tiles of tile_rows rows; tile_offsets[E] = all tiles.
//   * T = 0 is valid: counts, offsets and tile offsets are zeroed, invalid_count is 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"

namespace deepshock::moe {

/// Largest expert count dispatch accepts.
inline constexpr int kMaxDispatchExperts = 1024;
/// Largest top-k (row length of topk_ids) dispatch accepts.
inline constexpr int kMaxDispatchTopK = 32;

/// Outputs of dispatch (device pointers for the kernels, host pointers for the reference).
/// Sizes: N = T * k assignments, total = expert_offsets[E] <= N (allocate N).
struct DispatchOutputs {
  int* expert_counts = nullptr;   ///< [E] valid assignments per expert; required
  int* expert_offsets = nullptr;  ///< [E + 1] exclusive scan of expert_counts; required
  int* sorted_token = nullptr;    ///< [N] (first total used) token of each sorted assignment; required when N > 0
  int* sorted_slot = nullptr;     ///< [N] (first total used) flat index t * k + j; required when N > 0
  int* slot_position = nullptr;   ///< [N] position in the sorted arrays, -1 if invalid; required when N > 0
  int* invalid_count = nullptr;   ///< [1] assignments with an id outside [0, E) (-1 included); optional
  int* tile_offsets = nullptr;    ///< [E + 1] m-tile offsets for a grouped GEMM (see below); optional
  int tile_rows = 0;              ///< rows per m-tile; >= 1 when tile_offsets is set
};

namespace detail {

/// The local expert of global id `id` when the dispatched experts are [first, first + E), else
/// -1 (unsigned wrap-around: no overflow for any id).
DEEPSHOCK_HOST_DEVICE int local_expert(int id, int first, int E) {
  const unsigned u = static_cast<unsigned>(id) - static_cast<unsigned>(first);
  return u < static_cast<unsigned>(E) ? static_cast<int>(u) : -1;
}

/// Checks shapes and pointers; `n` receives T * k. Shared by the device entry point and the
/// reference.
inline Status check_dispatch_args(const int* topk_ids, int T, int k, int E, const DispatchOutputs& out, long long& n,
                                  int first_expert = 0) {
  n = 0;
  if (T < 0) return Status::invalid_argument("T", "must be >= 0, got " + std::to_string(T));
  if (k < 1 || k > kMaxDispatchTopK)
    return Status::invalid_argument("k", "must be in [1, " + std::to_string(kMaxDispatchTopK) + "], got " + std::to_string(k));
  if (E < 1 || E > kMaxDispatchExperts)
    return Status::invalid_argument("E", "must be in [1, " + std::to_string(kMaxDispatchExperts) + "], got " + std::to_string(E));
  if (first_expert < 0 || first_expert > std::numeric_limits<int>::max() - E)
    return Status::invalid_argument("first_expert", "must be >= 0 with first_expert + E in int32, got " + std::to_string(first_expert));
  n = static_cast<long long>(T) * k;
  if (n > std::numeric_limits<int>::max()) return Status::invalid_argument("T", "T * k must fit in int32 (slot indices are int32)");
  if (out.expert_counts == nullptr) return Status::invalid_argument("out.expert_counts", "must not be null");
  if (out.expert_offsets == nullptr) return Status::invalid_argument("out.expert_offsets", "must not be null");
  if (out.tile_offsets != nullptr && out.tile_rows < 1)
    return Status::invalid_argument("out.tile_rows", "must be >= 1 when out.tile_offsets is set, got " + std::to_string(out.tile_rows));
  if (n > 0) {
    if (topk_ids == nullptr) return Status::invalid_argument("topk_ids", "must not be null");
    if (out.sorted_token == nullptr) return Status::invalid_argument("out.sorted_token", "must not be null");
    if (out.sorted_slot == nullptr) return Status::invalid_argument("out.sorted_slot", "must not be null");
    if (out.slot_position == nullptr) return Status::invalid_argument("out.slot_position", "must not be null");
  }
  return Status::success();
}

}  // namespace detail

namespace reference {

/// Host reference of moe::dispatch (host pointers; same checks, same results).
inline Status dispatch(const int* topk_ids, int T, int k, int E, const DispatchOutputs& out, int first_expert = 0) {
  long long n = 0;
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_dispatch_args(topk_ids, T, k, E, out, n, first_expert));
  std::vector<int> counts(static_cast<std::size_t>(E), 0);
  int invalid = 0;
  for (long long a = 0; a < n; ++a) {
    const int id = detail::local_expert(topk_ids[a], first_expert, E);
    if (id >= 0) {
      ++counts[static_cast<std::size_t>(id)];
    } else {
      ++invalid;
    }
  }
  std::vector<int> next(static_cast<std::size_t>(E), 0);
  int sum = 0;
  for (int e = 0; e < E; ++e) {
    out.expert_counts[e] = counts[static_cast<std::size_t>(e)];
    out.expert_offsets[e] = sum;
    next[static_cast<std::size_t>(e)] = sum;
    sum += counts[static_cast<std::size_t>(e)];
  }
  out.expert_offsets[E] = sum;
  if (out.tile_offsets != nullptr) {
    int tiles = 0;
    for (int e = 0; e < E; ++e) {
      out.tile_offsets[e] = tiles;
      tiles += (counts[static_cast<std::size_t>(e)] + out.tile_rows - 1) / out.tile_rows;
    }
    out.tile_offsets[E] = tiles;
  }
  for (long long a = 0; a < n; ++a) {
    const int id = detail::local_expert(topk_ids[a], first_expert, E);
    if (id >= 0) {
      const int p = next[static_cast<std::size_t>(id)]++;
      out.sorted_token[p] = static_cast<int>(a / k);
      out.sorted_slot[p] = static_cast<int>(a);
      out.slot_position[a] = p;
    } else {
      out.slot_position[a] = -1;
    }
  }
  if (out.invalid_count != nullptr) *out.invalid_count = invalid;
  return Status::success();
}

}  // namespace reference
}  // namespace deepshock::moe
