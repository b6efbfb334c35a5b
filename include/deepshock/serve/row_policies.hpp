// deepshock/serve/row_policies.hpp — a step's per-request policy settings as the per-row tables
// of the fused policy pipeline (policy/pipeline.hpp), so requests with different safety,
// fairness and privacy settings share one pass.
//
//   serve::RowPolicyTables t;
//   DEEPSHOCK_RETURN_IF_ERROR(t.build(step, vocab));
//   using Post = policy::Pipeline<policy::PerRow<privacy::GridRelease>,   // each request's DP release
//                                 policy::PerRow<fair::GroupThreshold>,   // its fairness group
//                                 policy::PerRow<safety::TokenBan>>;      // its tenant's bans
//   Post::Params p{t.release_params(), t.fairness_params(thresholds_params), t.policy_params(ban_table, n)};
//   policy::run_pipeline<Post>(p, logits, logits, step.rows, vocab, stream);   // device: upload the tables first
//
// What build() makes, per row r of the step (padding rows: -1 everywhere, so they pass through):
//   * policy_entry[r]   = the row's RowSettings::policy_group: an entry of the executor's own
//                         table of settings (PerRow<P> for any logits policy P);
//   * fairness_group[r] = RowSettings::fairness_group, and fairness_entry[r] = 0 when it is set
//                         (>= 0), else -1: PerRow over a one-entry table of GroupThreshold
//                         (Axis::row, `group` = fairness_group) applies the threshold of the
//                         request's group and leaves requests without a group alone;
//   * releases / release_entry[r]: one GridRelease entry per request whose noise kind is not
//                         none, its first_row at the request's first row, so each request's
//                         noise is what it would get alone (privacy/release_policy.hpp).
// The tables live in host memory; a device executor copies them to the device (their sizes
// are bounded by the step's rows, so a bucket's buffers can be sized once).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/fair/postprocess.hpp"
#include "deepshock/policy/per_row.hpp"
#include "deepshock/privacy/release_policy.hpp"
#include "deepshock/serve/types.hpp"

namespace deepshock::serve {

class RowPolicyTables {
 public:
  /// Builds the tables of `s` for rows of `vocab` columns. Errors: a missing settings or
  /// request_row array, vocab < 1, or a request's noise spec (named "settings[r].noise.<field>", r its first row).
  template <class T>
  Status build(const Step<T>& s, int vocab) {
    if (vocab < 1) return Status::invalid_argument("vocab", "must be >= 1, got " + std::to_string(vocab));
    if (s.rows < 0 || s.valid_rows < 0 || s.valid_rows > s.rows)
      return Status::invalid_argument("step", "needs 0 <= valid_rows <= rows, got " + std::to_string(s.valid_rows) + " of " +
                                                  std::to_string(s.rows));
    if (s.valid_rows > 0 && (s.settings == nullptr || s.request_row == nullptr))
      return Status::invalid_argument("step", "needs settings and request_row for its rows");
    const std::size_t rows = static_cast<std::size_t>(s.rows);
    policy_entry_.assign(rows, -1);
    fairness_group_.assign(rows, -1);
    fairness_entry_.assign(rows, -1);
    release_entry_.assign(rows, -1);
    releases_.clear();
    // The entry release_params() gives when no request asks for noise: valid, selected by no row.
    if (rows > 0)
      DEEPSHOCK_RETURN_IF_ERROR(privacy::make_release({privacy::NoiseKind::laplace, {1, 1}, {0, 1.0f}, 0, 0}, 0, vocab, unused_));
    for (int r = 0; r < s.valid_rows; ++r) {
      const RowSettings& set = s.settings[r];
      const std::size_t i = static_cast<std::size_t>(r);
      policy_entry_[i] = set.policy_group;
      fairness_group_[i] = set.fairness_group;
      fairness_entry_[i] = set.fairness_group >= 0 ? 0 : -1;
      if (set.noise.kind == privacy::NoiseKind::none) continue;
      if (s.request_row[r] == 0) {  // a request's first row: its own release entry
        privacy::GridRelease::Params p;
        const Status st = privacy::make_release(set.noise, r, vocab, p);
        if (!st.ok()) return Status(st.code(), "settings[" + std::to_string(r) + "].noise." + st.message());
        releases_.push_back(p);
      }
      if (releases_.empty()) return Status::invalid_argument("request_row", "row " + std::to_string(r) + " continues no request");
      release_entry_[i] = static_cast<int>(releases_.size()) - 1;
    }
    return Status::success();
  }

  const std::vector<int>& policy_entry() const { return policy_entry_; }
  const std::vector<int>& fairness_group() const { return fairness_group_; }
  const std::vector<int>& fairness_entry() const { return fairness_entry_; }
  const std::vector<privacy::GridRelease::Params>& releases() const { return releases_; }
  const std::vector<int>& release_entry() const { return release_entry_; }

  /// PerRow params over host tables (the host reference; a device executor builds its own from
  /// uploaded copies). `table` / `entries`: the executor's table of P's settings.
  template <class P>
  typename policy::PerRow<P>::Params policy_params(const typename P::Params* table, int entries) const {
    return {table, policy_entry_.data(), entries};
  }
  /// `one`: the executor's GroupThreshold settings (thresholds, num_groups); group and axis
  /// are set here to this step's per-row groups.
  policy::PerRow<fair::GroupThreshold>::Params fairness_params(fair::GroupThreshold::Params& one) const {
    one.group = fairness_group_.data();
    one.axis = fair::GroupThreshold::Axis::row;
    return {&one, fairness_entry_.data(), 1};
  }
  /// The releases; with no request asking for noise, a table of one valid entry (PerRow needs
  /// entries >= 1) that no row selects.
  policy::PerRow<privacy::GridRelease>::Params release_params() const {
    if (releases_.empty()) return {&unused_, release_entry_.data(), 1};
    return {releases_.data(), release_entry_.data(), static_cast<int>(releases_.size())};
  }

 private:
  std::vector<int> policy_entry_, fairness_group_, fairness_entry_, release_entry_;
  std::vector<privacy::GridRelease::Params> releases_;
  privacy::GridRelease::Params unused_{};
};

}  // namespace deepshock::serve
