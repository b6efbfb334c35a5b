// deepshock/serve/types.hpp — the dynamic batcher's vocabulary (serve/batcher.hpp): its options,
// a request's options and per-row settings, the step an executor runs (and the StepExecutor
// concept it must satisfy), a request's result and the ticket submit() returns.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <future>
#include <string>
#include <utility>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/privacy/release_policy.hpp"
#include "deepshock/serve/moe_cost.hpp"

namespace deepshock::serve {

using Clock = std::chrono::steady_clock;

enum class DeadlineAction : unsigned char { reject, run_late };
enum class Shutdown : unsigned char { drain, reject };

/// Settings that travel with each row of a request to the executor (serve/row_policies.hpp
/// turns a step's settings into the per-row tables of the fused policy pipeline).
struct RowSettings {
  int adapter_id = -1;           ///< LoRA adapter (LayerInputs::adapter_ids); -1: none
  int policy_group = 0;          ///< an entry of the executor's table of safety settings (policy::PerRow); -1: none
  int fairness_group = -1;       ///< the request's group for fair::GroupThreshold (Axis::row); -1: none
  privacy::ReleaseSpec noise{};  ///< a DP release of the request's outputs (privacy::GridRelease); kind none: no noise
};

struct RequestOptions {
  int priority = 0;                       ///< larger runs first (ignored with preserve_ordering)
  std::chrono::microseconds deadline{0};  ///< from submission; 0: none
  RowSettings settings{};
};

struct BatcherOptions {
  int token_budget = 256;                          ///< rows per step (before padding); a request may not exceed it
  int max_requests = 64;                           ///< requests per step
  std::chrono::microseconds max_queue_delay{200};  ///< longest wait of a step's oldest request for a fuller step
  std::size_t max_queued = 4096;                   ///< queued requests beyond which submit() rejects
  DeadlineAction on_deadline = DeadlineAction::reject;
  bool preserve_ordering = false;  ///< steps take requests in arrival order, whatever their priority
  std::vector<int> buckets;        ///< ascending padded step sizes (CUDA graph buckets); empty: no padding
  bool moe_aware = false;          ///< wait only while it lowers the cost per token (serve/moe_cost.hpp)
  StepCostModel cost{};            ///< the step-cost model (refitted from measured steps when moe_aware)
  double moe_margin = 0.05;        ///< the relative gain per token that waiting must promise
  std::size_t metrics_window = 4096;

  Status validate() const {
    if (token_budget < 1) return Status::invalid_argument("token_budget", "must be >= 1, got " + std::to_string(token_budget));
    if (max_requests < 1) return Status::invalid_argument("max_requests", "must be >= 1, got " + std::to_string(max_requests));
    if (max_queue_delay.count() < 0) return Status::invalid_argument("max_queue_delay", "must be >= 0");
    if (max_queued < 1) return Status::invalid_argument("max_queued", "must be >= 1");
    for (std::size_t i = 0; i < buckets.size(); ++i)
      if (buckets[i] < 1 || (i > 0 && buckets[i] <= buckets[i - 1]))
        return Status::invalid_argument("buckets", "must be positive and strictly ascending (entry " + std::to_string(i) + ")");
    if (!(moe_margin >= 0.0 && moe_margin < 1.0)) return Status::invalid_argument("moe_margin", "must be in [0, 1)");
    if (moe_aware && !(cost.experts() > cost.k() && cost.k() >= 1))
      return Status::invalid_argument("cost",
                                      "moe_aware needs the layer's experts and top-k (StepCostModel(experts, k, ...), experts > k)");
    return Status::success();
  }
};

/// One step as the executor sees it (host memory owned by the batcher, valid during run()).
template <class T, class S = RowSettings>
struct Step {
  int rows = 0;        ///< rows to run: valid_rows padded to the bucket
  int valid_rows = 0;  ///< rows of requests; [valid_rows, rows) are padding
  int requests = 0;
  int bucket = -1;  ///< index into BatcherOptions::buckets; -1: unpadded (eager)
  int hidden = 0;
  const T* x = nullptr;                      ///< [rows, hidden]
  T* y = nullptr;                            ///< [rows, hidden]: the executor writes the valid rows
  const std::uint8_t* token_mask = nullptr;  ///< [rows]: 1 = padding
  const int* adapter_ids = nullptr;          ///< [rows]
  const S* settings = nullptr;               ///< [rows]
  const int* request_row = nullptr;          ///< [rows]: the row's index within its request (padding: 0)
  /// [rows], -1 on entry: per-row integer results an executor may return (the token each row
  /// selects after the logits policies, say); they come back in Result::ids.
  std::int32_t* ids = nullptr;
};

/// One request as a step of its own: the step and the per-row arrays it points to (no padding,
/// request_row 0..rows-1, every row with the request's settings, ids -1). How a caller runs a
/// request outside the batcher, e.g. to check that the batcher returned it the same bits.
template <class T>
class SoloStep {
 public:
  SoloStep(const T* x, T* y, int rows, int hidden, const RowSettings& settings = {})
      : mask_(static_cast<std::size_t>(rows), 0),
        adapters_(static_cast<std::size_t>(rows), settings.adapter_id),
        request_row_(static_cast<std::size_t>(rows)),
        settings_(static_cast<std::size_t>(rows), settings),
        ids_(static_cast<std::size_t>(rows), -1) {
    for (int r = 0; r < rows; ++r) request_row_[static_cast<std::size_t>(r)] = r;
    step_.rows = step_.valid_rows = rows;
    step_.requests = 1;
    step_.hidden = hidden;
    step_.x = x;
    step_.y = y;
    step_.token_mask = mask_.data();
    step_.adapter_ids = adapters_.data();
    step_.settings = settings_.data();
    step_.request_row = request_row_.data();
    step_.ids = ids_.data();
  }
  SoloStep(const SoloStep&) = delete;  // the step points into the arrays
  SoloStep& operator=(const SoloStep&) = delete;
  const Step<T>& step() const { return step_; }
  const std::vector<std::int32_t>& ids() const { return ids_; }  ///< what the executor left in Step::ids

 private:
  std::vector<std::uint8_t> mask_;
  std::vector<int> adapters_, request_row_;
  std::vector<RowSettings> settings_;
  std::vector<std::int32_t> ids_;
  Step<T> step_;
};

template <class E>
concept StepExecutor = requires(E& e, const Step<typename E::value_type>& s) {
  typename E::value_type;
  { e.hidden() } -> std::convertible_to<int>;
  { e.run(s) } -> std::same_as<Status>;
};

/// A request's outcome.
template <class T>
struct Result {
  Result() = default;
  explicit Result(Status s) : status(std::move(s)) {}
  Status status;
  std::vector<T> y;  ///< [rows, hidden] when status is ok
  double queue_us = 0.0, compute_us = 0.0;
  int step_rows = 0, step_requests = 0;  ///< the step it ran in
  bool late = false;                     ///< ran after its deadline (DeadlineAction::run_late)
  std::vector<std::int32_t> ids;         ///< [rows] when status is ok: Step::ids as the executor left them
};

/// What submit() returns: the request's id (for cancel) and its result.
template <class T>
struct Ticket {
  std::uint64_t id = 0;
  std::future<Result<T>> result;
};

}  // namespace deepshock::serve
