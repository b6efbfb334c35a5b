// deepshock/serve/metrics.hpp — what the batcher (serve/batcher.hpp) measures: per request the
// time queued and the time computing, per step the fill ratio (rows of requests over rows run)
// and the bucket; percentiles over a window of the most recent samples. A plain struct
// (BatcherMetrics) that prints itself.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

namespace deepshock::serve {

/// The last `capacity` values of a series (a ring), and their percentiles.
class Window {
 public:
  explicit Window(std::size_t capacity = 1024) : capacity_(capacity < 1 ? 1 : capacity) {}
  void add(double v) {
    if (values_.size() < capacity_) values_.push_back(v);
    else values_[next_] = v;
    next_ = (next_ + 1) % capacity_;
    ++count_;
  }
  std::size_t size() const { return values_.size(); }
  /// Everything ever added (the window keeps the last capacity()).
  std::size_t count() const { return count_; }
  std::size_t capacity() const { return capacity_; }
  /// The q-quantile (0 <= q <= 1) of the window, nearest rank; 0 when empty.
  double percentile(double q) const {
    if (values_.empty()) return 0.0;
    std::vector<double> v = values_;
    const std::size_t rank = static_cast<std::size_t>(std::max(0.0, q * static_cast<double>(v.size()) - 1e-9));
    const std::size_t i = std::min(rank, v.size() - 1);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
    return v[i];
  }
  double mean() const {
    double s = 0.0;
    for (double v : values_) s += v;
    return values_.empty() ? 0.0 : s / static_cast<double>(values_.size());
  }

 private:
  std::size_t capacity_, next_ = 0, count_ = 0;
  std::vector<double> values_;
};

/// p50 / p90 / p99 of one series.
struct Percentiles {
  double p50 = 0.0, p90 = 0.0, p99 = 0.0;
  static Percentiles of(const Window& w) { return {w.percentile(0.5), w.percentile(0.9), w.percentile(0.99)}; }
};

/// A snapshot of the batcher's counters and windows (BatcherT::metrics()).
struct BatcherMetrics {
  std::size_t submitted = 0, completed = 0, succeeded = 0, failed = 0, rejected = 0, cancelled = 0, expired = 0;
  std::size_t steps = 0, queued = 0;
  Percentiles queue_us, compute_us, total_us;  ///< per request, over the window
  double mean_fill = 0.0;                      ///< per step: request rows / rows run (padding lowers it)
  double mean_step_rows = 0.0, mean_step_requests = 0.0;
  std::vector<std::size_t> steps_per_bucket;  ///< per configured bucket; the last entry: eager steps (no bucket)

  std::string to_string() const {
    char buf[640];
    std::snprintf(buf, sizeof buf,
                  "requests: %zu submitted, %zu completed (%zu ok, %zu failed, %zu rejected, %zu cancelled, %zu past deadline), %zu "
                  "queued\n"
                  "steps   : %zu, mean %.1f rows of %.1f requests, mean fill %.3f\n"
                  "queue   : p50 %.1f us, p90 %.1f us, p99 %.1f us\n"
                  "compute : p50 %.1f us, p90 %.1f us, p99 %.1f us\n"
                  "total   : p50 %.1f us, p90 %.1f us, p99 %.1f us",
                  submitted, completed, succeeded, failed, rejected, cancelled, expired, queued, steps, mean_step_rows, mean_step_requests,
                  mean_fill, queue_us.p50, queue_us.p90, queue_us.p99, compute_us.p50, compute_us.p90, compute_us.p99, total_us.p50,
                  total_us.p90, total_us.p99);
    std::string s(buf);
    if (steps_per_bucket.size() > 1) {
      s += "\nbuckets :";
      for (std::size_t i = 0; i < steps_per_bucket.size(); ++i)
        s += (i + 1 == steps_per_bucket.size() ? " eager " : " ") + std::to_string(steps_per_bucket[i]);
    }
    return s;
  }
};

}  // namespace deepshock::serve
