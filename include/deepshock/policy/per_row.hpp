// deepshock/policy/per_row.hpp — per-request settings of a logits policy inside one batch.
//
//   using Penalty = ds::policy::PerRow<ds::safety::RepetitionPenalty>;
//   Penalty::Params p{table, row_entry, entries};   // table[e]: one setting; row_entry[r]: row r's
//   ds::policy::run_pipeline<ds::policy::Pipeline<Penalty, ...>>(...);
//
// A serving batch mixes requests whose settings differ (a banned-token list per tenant, a
// penalty per request, a watermark key per customer). PerRow<P> holds a table of P::Params, one
// per distinct setting, and the table entry of each row; row r gets P::apply(table[row_entry[r]],
// r, col, x), and rows whose entry is -1 (or outside the table) pass through unchanged. So one
// fused pipeline pass serves every request of the batch (the batcher's RowSettings::policy_group
// is such an entry). PerRow<P> is itself a LogitsPolicy: it nests in Pipeline and in PerRow.
//
// Validation: the table and row entries may live in device memory, which the host cannot read
// without synchronising; validate() checks the pointers and the count, and the caller validates
// the entries themselves on the host, before uploading them, with validate_entries().
#pragma once

#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/policy/concept.hpp"

namespace deepshock::policy {

template <class P>
struct PerRow {
  static_assert(LogitsPolicy<P>, "deepshock::policy::PerRow: P must be a LogitsPolicy (policy/concept.hpp).");
  static constexpr const char* kName = "PerRow";
  struct Params {
    const typename P::Params* table = nullptr;  ///< [entries] one setting each
    const int* row_entry = nullptr;             ///< [rows] the row's entry; -1: the policy does not apply to the row
    int entries = 0;
  };
  static Status validate(const Params& p, int rows, int vocab) {
    (void)vocab;
    if (p.entries < 1) return Status::invalid_argument("entries", "must be >= 1, got " + std::to_string(p.entries));
    if (p.table == nullptr) return Status::invalid_argument("table", "must not be null");
    if (rows > 0 && p.row_entry == nullptr) return Status::invalid_argument("row_entry", "must not be null");
    return Status::success();
  }
  /// Host check of every entry of a host copy of the table (P::validate on each), naming the entry.
  static Status validate_entries(const typename P::Params* host_table, int entries, int rows, int vocab) {
    if (host_table == nullptr) return Status::invalid_argument("table", "must not be null");
    for (int e = 0; e < entries; ++e) {
      const Status st = P::validate(host_table[e], rows, vocab);
      if (!st.ok()) return Status(st.code(), "table[" + std::to_string(e) + "]." + st.message());
    }
    return Status::success();
  }
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) {
    const int e = p.row_entry[row];
    return e < 0 || e >= p.entries ? x : P::apply(p.table[e], row, col, x);
  }
};

}  // namespace deepshock::policy
