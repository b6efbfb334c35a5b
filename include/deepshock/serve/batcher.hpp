// deepshock/serve/batcher.hpp — a dynamic batcher in front of one MoE layer (host C++,
// thread-safe, header-only).
//
// Callers submit requests (rows of activations plus their own settings) from any thread and get
// a std::future (or a callback); one worker thread forms steps and runs them on an executor:
//
//   serve::Batcher<MyExecutor> b(exec, {.token_budget = 256, .max_queue_delay = 200us});
//   auto t = b.submit(x, rows, {.priority = 1, .deadline = 5ms, .settings = {.adapter_id = 3}});
//   serve::Result<bf16> r = t.result.get();        // r.status, r.y [rows, H], queue and compute time
//   b.shutdown(serve::Shutdown::drain);
//
// Forming a step: the queued requests in order — priority (larger first), then arrival; with
// preserve_ordering, arrival only — are taken while they fit in the token budget and the request
// cap; the first that does not fit ends the step (so a large request is never starved by small
// ones behind it). A step that is not full waits for more arrivals until its oldest request has
// waited max_queue_delay; with moe_aware, it waits only while waiting is expected to lower the
// cost per token (serve/moe_cost.hpp: the experts a step touches grow sublinearly with its
// tokens) and otherwise runs at once. Requests past their deadline are rejected
// (deadline_exceeded) or run late, as configured; a full queue rejects new requests
// (resource_exhausted); cancel() removes a queued request (cancelled).
//
// Padding: with buckets (the step sizes a GPU executor captures as CUDA graphs), a step of R rows
// runs as the smallest bucket >= R, rows [R, bucket) zero with token_mask = 1 (routed nowhere)
// and no adapter; steps above the largest bucket run unpadded (eager). Every row of a step is
// its request's row as submitted, so a batch-invariant executor (the device layer, the exact host
// executor) gives each request the bits it would get alone: the batcher never mixes rows.
//
// Completion, exactly once per request: its result is set by whichever of the worker's step, the
// deadline check, cancel() or shutdown takes it out of the queue (each under the queue's lock).
// A step whose executor returns an error fails exactly that step's requests with that Status;
// the batcher keeps serving. shutdown(drain) stops taking requests (unavailable) and runs what is
// queued; shutdown(reject) fails what is queued with unavailable. Callbacks run on the worker
// thread (or, for requests refused at submit, on the caller's): keep them short.
//
// The executor: a type with value_type, hidden() and `Status run(const Step<value_type>&)`,
// called from the worker thread only (StepExecutor). Per-row settings (RowSettings: the LoRA
// adapter id, an entry of the executor's table of safety settings, a fairness group, a DP noise
// release) travel with the rows, with each row's index within its request, so requests with
// different settings share a step (serve/row_policies.hpp builds the pipeline's tables from them).
// A request's noise spec is validated at submit.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/serve/metrics.hpp"
#include "deepshock/serve/moe_cost.hpp"
#include "deepshock/serve/types.hpp"

namespace deepshock::serve {

template <class Exec>
class Batcher {
  static_assert(StepExecutor<Exec>, "deepshock::serve::Batcher: the executor needs `using value_type = T`, `int hidden() const` and "
                                    "`deepshock::Status run(const deepshock::serve::Step<T>&)` (see serve/batcher.hpp).");

 public:
  using T = typename Exec::value_type;
  using Callback = std::function<void(Result<T>)>;
  /// Deadlines beyond this are treated as this (a time point must not overflow).
  static constexpr std::chrono::microseconds kLongestDeadline = std::chrono::hours(24 * 365);

  /// The worker starts at once; status() says whether the options were valid (if not, every
  /// submit is refused with that Status).
  Batcher(Exec& exec, BatcherOptions options)
      : exec_(exec),
        o_(std::move(options)),
        hidden_(exec.hidden()),
        status_(check_options(o_, hidden_)),
        cost_(o_.cost),
        queue_w_(o_.metrics_window),
        compute_w_(o_.metrics_window),
        total_w_(o_.metrics_window),
        fill_w_(o_.metrics_window),
        rows_w_(o_.metrics_window),
        reqs_w_(o_.metrics_window) {
    if (!status_.ok()) return;
    const int cap = std::max(o_.token_budget, o_.buckets.empty() ? 0 : o_.buckets.back());
    x_.assign(static_cast<std::size_t>(cap) * hidden_, T{});
    y_.assign(x_.size(), T{});
    mask_.assign(static_cast<std::size_t>(cap), 0);
    adapters_.assign(static_cast<std::size_t>(cap), -1);
    settings_.assign(static_cast<std::size_t>(cap), RowSettings{});
    request_row_.assign(static_cast<std::size_t>(cap), 0);
    ids_.assign(static_cast<std::size_t>(cap), -1);
    per_bucket_.assign(o_.buckets.size() + 1, 0);
    worker_ = std::thread([this] { loop(); });
    worker_id_ = worker_.get_id();  // before any other thread sees the batcher: read without a lock
  }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;
  ~Batcher() { shutdown(Shutdown::drain); }

  Status status() const { return status_; }

  /// Submits `rows` rows of x (row stride hidden; copied before return). The future is always
  /// completed: with the rows of y, or a Status (invalid rows, a full queue, shutdown, deadline,
  /// cancel, or the step's executor error).
  Ticket<T> submit(const T* x, int rows, const RequestOptions& options = {}) {
    auto promise = std::make_shared<std::promise<Result<T>>>();
    Ticket<T> t;
    t.result = promise->get_future();
    t.id = submit(x, rows, options, [promise](Result<T> r) { promise->set_value(std::move(r)); });
    return t;
  }

  /// The same with a callback; returns the request's id (0 when refused at once).
  std::uint64_t submit(const T* x, int rows, const RequestOptions& options, Callback done) {
    const Status bad = check_request(x, rows, options, done);
    std::unique_ptr<Request> req;
    if (bad.ok()) {  // copy the rows before taking the lock
      req = std::make_unique<Request>();
      req->rows = rows;
      req->options = options;
      req->x.assign(x, x + static_cast<std::size_t>(rows) * hidden_);
    }
    std::uint64_t id = 0;
    const Status refused = [&]() -> Status {
      std::lock_guard<std::mutex> lk(mu_);
      ++submitted_;
      if (!bad.ok()) return count_refusal(bad);
      if (stopping_) return count_refusal(Status::unavailable("deepshock::serve::Batcher: shutting down, no new requests"));
      if (queue_.size() >= o_.max_queued)
        return count_refusal(Status::resource_exhausted("max_queued", "the queue holds " + std::to_string(queue_.size()) + " requests"));
      id = ++next_id_;
      req->id = id;
      req->done = std::move(done);
      req->arrival = Clock::now();
      req->has_deadline = options.deadline.count() > 0;
      req->deadline = req->arrival + std::min(options.deadline, kLongestDeadline);
      note_arrival(req->arrival, rows);
      const Key key{o_.preserve_ordering ? 0 : -static_cast<long long>(options.priority), id};
      by_id_.emplace(id, key);
      arrivals_.emplace(id);
      if (req->has_deadline) deadlines_.emplace(req->deadline, id);
      queue_.emplace(key, std::move(req));
      return Status::success();
    }();
    if (refused.ok()) {
      cv_.notify_one();
      return id;
    }
    if (done) done(Result<T>{refused});  // refused at once: on the caller's thread (an empty callback: nothing to call)
    return 0;
  }

  /// Removes a queued request and completes it with `cancelled`; invalid_argument when the id is
  /// not queued (unknown, already running or done).
  Status cancel(std::uint64_t id) {
    std::unique_ptr<Request> req;
    {
      std::lock_guard<std::mutex> lk(mu_);
      req = take_locked(id);
      if (req == nullptr) return Status::invalid_argument("id", "request " + std::to_string(id) + " is not queued");
      ++cancelled_;
      ++completed_;
    }
    finish(*req, Status::cancelled("deepshock::serve::Batcher: cancelled by the caller"));
    return Status::success();
  }

  /// Stops taking requests and ends the worker once the queue is drained (drain) or failed
  /// (reject); waits for it. Idempotent; the destructor drains.
  void shutdown(Shutdown mode = Shutdown::drain) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!stopping_) {
        stopping_ = true;
        reject_on_stop_ = mode == Shutdown::reject;
      } else if (mode == Shutdown::reject) {
        reject_on_stop_ = true;
      }
    }
    cv_.notify_all();
    if (std::this_thread::get_id() == worker_id_) return;  // from a callback: the worker ends after it returns
    std::lock_guard<std::mutex> jl(join_mu_);
    if (worker_.joinable()) worker_.join();
  }

  BatcherMetrics metrics() const {
    std::lock_guard<std::mutex> lk(mu_);
    BatcherMetrics m;
    m.submitted = submitted_;
    m.completed = completed_;
    m.succeeded = succeeded_;
    m.failed = failed_;
    m.rejected = rejected_;
    m.cancelled = cancelled_;
    m.expired = expired_;
    m.steps = steps_;
    m.queued = queue_.size();
    m.queue_us = Percentiles::of(queue_w_);
    m.compute_us = Percentiles::of(compute_w_);
    m.total_us = Percentiles::of(total_w_);
    m.mean_fill = fill_w_.mean();
    m.mean_step_rows = rows_w_.mean();
    m.mean_step_requests = reqs_w_.mean();
    m.steps_per_bucket = per_bucket_;
    return m;
  }

  /// The step-cost model as refitted so far (moe_aware), for reports.
  /// Whether shutdown() has begun (submits are refused from then on).
  bool stopping() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stopping_;
  }

  StepCostModel cost_model() const {
    std::lock_guard<std::mutex> lk(mu_);
    return cost_;
  }

 private:
  struct Request {
    std::uint64_t id = 0;
    int rows = 0;
    RequestOptions options;
    std::vector<T> x;
    Callback done;
    Clock::time_point arrival, deadline, started;
    bool has_deadline = false, late = false;
  };
  struct Key {  // queue order: priority (negated: larger first), then arrival
    long long neg_priority;
    std::uint64_t id;
    bool operator<(const Key& o) const { return neg_priority != o.neg_priority ? neg_priority < o.neg_priority : id < o.id; }
  };

  std::unique_ptr<Request> take_locked(std::uint64_t id) {
    const auto k = by_id_.find(id);
    if (k == by_id_.end()) return nullptr;
    const auto it = queue_.find(k->second);
    std::unique_ptr<Request> r = std::move(it->second);
    queue_.erase(it);
    by_id_.erase(k);
    arrivals_.erase(id);
    if (r->has_deadline) deadlines_.erase({r->deadline, id});
    return r;
  }

  static Status check_options(const BatcherOptions& o, int hidden) {
    DEEPSHOCK_RETURN_IF_ERROR(o.validate());
    if (hidden < 1) return Status::invalid_argument("exec.hidden()", "must be >= 1");
    return Status::success();
  }
  Status check_request(const T* x, int rows, const RequestOptions& options, const Callback& done) const {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    if (rows < 1 || rows > o_.token_budget)
      return Status::invalid_argument("rows", "must be in [1, token_budget = " + std::to_string(o_.token_budget) + "], got " +
                                                  std::to_string(rows));
    if (x == nullptr) return Status::invalid_argument("x", "must not be null");
    if (options.deadline.count() < 0) return Status::invalid_argument("options.deadline", "must be >= 0");
    if (!done) return Status::invalid_argument("done", "the callback must not be empty");
    DEEPSHOCK_RETURN_IF_ERROR(privacy::validate_release(options.settings.noise, "options.settings.noise."));
    return Status::success();
  }
  /// Counts a request refused at submit (under mu_) and hands its Status back.
  Status count_refusal(Status st) {
    ++rejected_;
    ++completed_;
    return st;
  }

  static double us_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }

  /// Arrivals: exponentially weighted means of the gaps between requests and of their rows.
  void note_arrival(Clock::time_point now, int rows) {
    if (last_arrival_ != Clock::time_point{}) {
      const double gap = std::max(0.01, us_between(last_arrival_, now));
      mean_gap_us_ = mean_gap_us_ <= 0.0 ? gap : 0.9 * mean_gap_us_ + 0.1 * gap;
    }
    mean_rows_ = mean_rows_ <= 0.0 ? rows : 0.9 * mean_rows_ + 0.1 * rows;
    last_arrival_ = now;
  }
  double request_rate() const { return mean_gap_us_ > 0.0 ? 1.0 / mean_gap_us_ : 0.0; }

  void finish(Request& r, Status st) {
    Result<T> res{std::move(st)};
    res.queue_us = us_between(r.arrival, Clock::now());
    r.done(std::move(res));
  }

  /// The worker: expire, wait or form a step, run it, complete it; until shut down.
  void loop() {
    std::vector<std::unique_ptr<Request>> step, refused;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      const Clock::time_point now = Clock::now();
      const bool stop_now = stopping_ && reject_on_stop_;
      if (stop_now) {
        while (!queue_.empty()) refused.push_back(take_locked(queue_.begin()->second->id));
      } else if (o_.on_deadline == DeadlineAction::reject) {
        while (!deadlines_.empty() && deadlines_.begin()->first <= now) refused.push_back(take_locked(deadlines_.begin()->second));
      }
      if (!refused.empty()) {
        const Status refusal = stop_now
                                   ? Status::unavailable("deepshock::serve::Batcher: shut down before the request ran")
                                   : Status::deadline_exceeded("deepshock::serve::Batcher: the request's deadline passed while queued");
        const bool expired = !stop_now;
        (expired ? expired_ : rejected_) += refused.size();
        completed_ += refused.size();
        lk.unlock();
        for (auto& r : refused) finish(*r, refusal);
        refused.clear();
        lk.lock();
        continue;
      }
      if (queue_.empty()) {
        if (stopping_) return;
        cv_.wait(lk);
        continue;
      }
      // The step's requests in queue order, while they fit.
      int tokens = 0, n = 0;
      bool full = false;
      for (const auto& [key, r] : queue_) {
        if (n == o_.max_requests || tokens + r->rows > o_.token_budget) {
          full = true;
          break;
        }
        tokens += r->rows;
        ++n;
      }
      full = full || tokens == o_.token_budget || n == o_.max_requests;
      if (!full && !stopping_) {
        const Clock::time_point oldest = queue_.at(by_id_.at(*arrivals_.begin()))->arrival;
        Clock::time_point until = oldest + o_.max_queue_delay;
        // A queued request whose deadline falls inside the wait runs now rather than expire waiting.
        const bool deadline_soon = !deadlines_.empty() && deadlines_.begin()->first <= until;
        if (!deadline_soon && now < until &&
            (!o_.moe_aware ||
             should_wait(cost_, tokens, o_.token_budget, request_rate(), mean_rows_, us_between(now, until), o_.moe_margin))) {
          cv_.wait_until(lk, until);
          continue;
        }
      }
      for (int i = 0; i < n; ++i) step.push_back(take_locked(queue_.begin()->second->id));
      lk.unlock();
      run_step(step, tokens);
      step.clear();
      lk.lock();
    }
  }

  /// Stages, runs and completes one step (worker thread, no lock held but for the counters).
  void run_step(std::vector<std::unique_ptr<Request>>& step, int valid) {
    int rows = valid, bucket = -1;
    for (std::size_t b = 0; b < o_.buckets.size(); ++b)
      if (o_.buckets[b] >= valid) {
        rows = o_.buckets[b];
        bucket = static_cast<int>(b);
        break;
      }
    const std::size_t H = static_cast<std::size_t>(hidden_);
    std::size_t row = 0;
    const Clock::time_point start = Clock::now();
    for (auto& r : step) {
      std::copy(r->x.begin(), r->x.end(), x_.begin() + static_cast<std::ptrdiff_t>(row * H));
      for (int i = 0; i < r->rows; ++i, ++row) {
        mask_[row] = 0;
        adapters_[row] = r->options.settings.adapter_id;
        settings_[row] = r->options.settings;
        request_row_[row] = i;
      }
      r->started = start;
      r->late = r->has_deadline && r->deadline < start;
    }
    for (; row < static_cast<std::size_t>(rows); ++row) {  // padding: zero rows, masked, no adapter
      std::fill(x_.begin() + static_cast<std::ptrdiff_t>(row * H), x_.begin() + static_cast<std::ptrdiff_t>((row + 1) * H), T{});
      mask_[row] = 1;
      adapters_[row] = -1;
      settings_[row] = RowSettings{};
      request_row_[row] = 0;
    }
    Step<T> s;
    s.rows = rows;
    s.valid_rows = valid;
    s.requests = static_cast<int>(step.size());
    s.bucket = bucket;
    s.hidden = hidden_;
    s.x = x_.data();
    s.y = y_.data();
    s.token_mask = mask_.data();
    s.adapter_ids = adapters_.data();
    s.settings = settings_.data();
    s.request_row = request_row_.data();
    std::fill(ids_.begin(), ids_.begin() + rows, -1);
    s.ids = ids_.data();
    const Status st = exec_.run(s);
    const Clock::time_point end = Clock::now();
    const double compute = us_between(start, end);
    {
      std::lock_guard<std::mutex> lk(mu_);
      ++steps_;
      ++per_bucket_[bucket < 0 ? o_.buckets.size() : static_cast<std::size_t>(bucket)];
      fill_w_.add(static_cast<double>(valid) / rows);
      rows_w_.add(rows);
      reqs_w_.add(static_cast<double>(step.size()));
      if (o_.moe_aware) cost_.observe(valid, compute);  // padding rows touch no expert
      for (auto& r : step) {
        queue_w_.add(us_between(r->arrival, start));
        compute_w_.add(compute);
        total_w_.add(us_between(r->arrival, end));
      }
      (st.ok() ? succeeded_ : failed_) += step.size();
      completed_ += step.size();
    }
    row = 0;
    for (auto& r : step) {
      Result<T> res{st};
      res.queue_us = us_between(r->arrival, start);
      res.compute_us = compute;
      res.step_rows = rows;
      res.step_requests = static_cast<int>(step.size());
      res.late = r->late;
      if (st.ok()) {
        res.y.assign(y_.begin() + static_cast<std::ptrdiff_t>(row * H), y_.begin() + static_cast<std::ptrdiff_t>((row + r->rows) * H));
        res.ids.assign(ids_.begin() + static_cast<std::ptrdiff_t>(row), ids_.begin() + static_cast<std::ptrdiff_t>(row + r->rows));
      }
      row += static_cast<std::size_t>(r->rows);
      r->done(std::move(res));
    }
  }

  Exec& exec_;
  BatcherOptions o_;
  int hidden_ = 0;
  Status status_;
  // Worker-only staging.
  std::vector<T> x_, y_;
  std::vector<std::uint8_t> mask_;
  std::vector<int> adapters_;
  std::vector<RowSettings> settings_;
  std::vector<int> request_row_;
  std::vector<std::int32_t> ids_;
  // Under mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, std::unique_ptr<Request>> queue_;
  std::unordered_map<std::uint64_t, Key> by_id_;
  std::set<std::uint64_t> arrivals_;  // queued ids: the first is the oldest
  std::set<std::pair<Clock::time_point, std::uint64_t>> deadlines_;
  std::uint64_t next_id_ = 0;
  bool stopping_ = false, reject_on_stop_ = false;
  Clock::time_point last_arrival_{};
  double mean_gap_us_ = 0.0, mean_rows_ = 0.0;
  StepCostModel cost_;
  std::size_t submitted_ = 0, completed_ = 0, succeeded_ = 0, failed_ = 0, rejected_ = 0, cancelled_ = 0, expired_ = 0, steps_ = 0;
  Window queue_w_, compute_w_, total_w_, fill_w_, rows_w_, reqs_w_;
  std::vector<std::size_t> per_bucket_;
  std::mutex join_mu_;
  std::thread worker_;
  std::thread::id worker_id_;
};

}  // namespace deepshock::serve
