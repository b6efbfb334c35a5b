// Status checks shared by every test (host-only and device tests alike): DS_REQUIRE_OK and the
// argument-rejection checks of the library's "argument: message" convention.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "deepshock/core/status.hpp"

/// REQUIREs that `expr` (a deepshock::Status) is ok, printing the status when it is not.
#define DS_REQUIRE_OK(expr)                 \
  do {                                      \
    const ::deepshock::Status st_ = (expr); \
    INFO(st_.to_string());                  \
    REQUIRE(st_.ok());                      \
  } while (0)

namespace ds_test {

/// A bad call: not ok, and the message starts with the argument's name and a colon
/// ("argument: ...", the library's convention for argument errors).
inline void check_rejects(const deepshock::Status& st, const std::string& argument) {
  INFO(st.to_string() << " (expected the argument " << argument << ")");
  CHECK_FALSE(st.ok());
  CHECK(st.message().rfind(argument + ":", 0) == 0);
}
/// A bad call: not ok, and the message starts with `prefix` verbatim (e.g. "ban_mask: expected
/// 32 words, got 33" to pin the text, or "rows:" for the argument alone).
inline void check_rejects_prefix(const deepshock::Status& st, const std::string& prefix) {
  INFO(st.to_string() << " (expected a message starting with \"" << prefix << "\")");
  CHECK_FALSE(st.ok());
  CHECK(st.message().rfind(prefix, 0) == 0);
}

}  // namespace ds_test
