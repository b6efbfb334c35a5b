// deepshock/core/status.hpp — the error type every host entry point returns.
//
// A Status is a code plus a human-readable message that names the offending argument,
// e.g. `invalid_argument: topk_ids: must not be null`. It never throws and never aborts.
// Success carries no message and costs one enum compare. The type is [[nodiscard]]: ignoring a
// returned Status is a warning. (nvcc 13 also warns on `st = f();` because the assignment's
// result is discarded; chain calls with DEEPSHOCK_RETURN_IF_ERROR instead.)
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace deepshock {

/// Broad classes of failure. Messages carry the detail.
enum class StatusCode : int {
  ok = 0,
  invalid_argument,    ///< a caller-supplied value is wrong (null, out of range, mismatched shape)
  out_of_range,        ///< an index or size exceeds a planned maximum
  unsupported,         ///< a valid request this build or device cannot serve
  resource_exhausted,  ///< out of memory or workspace too small
  runtime_error,       ///< the CUDA runtime (or the simulator) reported an error
  internal,            ///< a library invariant broke: a bug in deepshock
  cancelled,           ///< the caller cancelled the work before it ran
  deadline_exceeded,   ///< the work's deadline passed before it could run
  unavailable,         ///< the service is shutting down and takes no more work
};

/// Printable name of a StatusCode.
constexpr std::string_view to_string(StatusCode c) noexcept {
  switch (c) {
    case StatusCode::ok: return "ok";
    case StatusCode::invalid_argument: return "invalid_argument";
    case StatusCode::out_of_range: return "out_of_range";
    case StatusCode::unsupported: return "unsupported";
    case StatusCode::resource_exhausted: return "resource_exhausted";
    case StatusCode::runtime_error: return "runtime_error";
    case StatusCode::internal: return "internal";
    case StatusCode::cancelled: return "cancelled";
    case StatusCode::deadline_exceeded: return "deadline_exceeded";
    case StatusCode::unavailable: return "unavailable";
  }
  return "unknown";
}

/// Result of a host entry point: `ok()` or a code with a message naming the argument.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status success() { return {}; }
  /// Replaces this status with `other`: for a stored status (a member), where `st = other`
  /// would make nvcc warn that the returned Status& of a [[nodiscard]] type is ignored.
  void assign(Status other) noexcept {
    code_ = other.code_;
    message_ = std::move(other.message_);
  }
  /// `argument` is the parameter's name as the caller knows it; `what` says what is wrong.
  static Status invalid_argument(std::string_view argument, std::string_view what) {
    return {StatusCode::invalid_argument, join(argument, what)};
  }
  static Status out_of_range(std::string_view argument, std::string_view what) { return {StatusCode::out_of_range, join(argument, what)}; }
  static Status unsupported(std::string_view what) { return {StatusCode::unsupported, std::string(what)}; }
  static Status resource_exhausted(std::string_view argument, std::string_view what) {
    return {StatusCode::resource_exhausted, join(argument, what)};
  }
  static Status runtime_error(std::string_view what) { return {StatusCode::runtime_error, std::string(what)}; }
  static Status internal(std::string_view what) { return {StatusCode::internal, std::string(what)}; }
  static Status cancelled(std::string_view what) { return {StatusCode::cancelled, std::string(what)}; }
  static Status deadline_exceeded(std::string_view what) { return {StatusCode::deadline_exceeded, std::string(what)}; }
  static Status unavailable(std::string_view what) { return {StatusCode::unavailable, std::string(what)}; }

  bool ok() const noexcept { return code_ == StatusCode::ok; }
  explicit operator bool() const noexcept { return ok(); }
  StatusCode code() const noexcept { return code_; }
  /// The message without the code, e.g. "topk_ids: must not be null".
  const std::string& message() const noexcept { return message_; }
  /// "ok" or "<code>: <message>".
  std::string to_string() const {
    if (ok()) return "ok";
    std::string s(deepshock::to_string(code_));
    s += ": ";
    s += message_;
    return s;
  }

 private:
  static std::string join(std::string_view argument, std::string_view what) {
    std::string s(argument);
    s += ": ";
    s += what;
    return s;
  }
  StatusCode code_ = StatusCode::ok;
  std::string message_;
};

}  // namespace deepshock

/// Returns early from the enclosing function when `expr` yields a non-ok Status.
#define DEEPSHOCK_RETURN_IF_ERROR(expr)              \
  do {                                               \
    ::deepshock::Status ds_status_tmp_ = (expr);     \
    if (!ds_status_tmp_.ok()) return ds_status_tmp_; \
  } while (0)
