// Device-buffer helpers shared by the kernel tests (*.inc), compiled both by g++ against the
// simulator and by nvcc: copies to and from rt::DeviceBuffer, buffers poisoned with 0xFF bytes
// (NaN floats, -1 integers); DS_REQUIRE_OK and the argument-rejection checks come from
// status_checks.hpp. The helpers
// synchronise the device after their default-stream copy or fill (downloads also before it), so
// that work on a test's own non-blocking stream never overlaps them. The .inc files bring the
// names they use into scope with using-declarations.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/platform/runtime.hpp"
#include "status_checks.hpp"

namespace ds_test {

/// A device copy of `h`, exactly h.size() elements: an empty `h` gives an empty buffer whose
/// data() is null.
template <class T>
deepshock::rt::DeviceBuffer<T> upload(const std::vector<T>& h) {
  deepshock::rt::DeviceBuffer<T> d;
  REQUIRE(d.allocate(h.size()).ok());
  REQUIRE(d.copy_from_host(h.data(), h.size()).ok());
  REQUIRE(deepshock::rt::device_synchronize().ok());
  return d;
}
/// As upload, but the buffer holds at least one element, so data() is never null (a valid
/// pointer for zero-length inputs); only the first h.size() elements are written.
template <class T>
deepshock::rt::DeviceBuffer<T> upload_nonnull(const std::vector<T>& h) {
  deepshock::rt::DeviceBuffer<T> d;
  REQUIRE(d.allocate(std::max<std::size_t>(h.size(), 1)).ok());
  if (!h.empty()) REQUIRE(d.copy_from_host(h.data(), h.size()).ok());
  REQUIRE(deepshock::rt::device_synchronize().ok());
  return d;
}

/// A device buffer of exactly `n` elements, every byte 0xFF (n = 0: empty, data() null).
template <class T>
deepshock::rt::DeviceBuffer<T> poisoned(std::size_t n) {
  deepshock::rt::DeviceBuffer<T> d;
  REQUIRE(d.allocate(n).ok());
  REQUIRE(d.fill_bytes(0xFF).ok());
  REQUIRE(deepshock::rt::device_synchronize().ok());
  return d;
}
/// As poisoned, but at least one element, so data() is never null.
template <class T>
deepshock::rt::DeviceBuffer<T> poisoned_nonnull(std::size_t n) {
  deepshock::rt::DeviceBuffer<T> d;
  REQUIRE(d.allocate(std::max<std::size_t>(n, 1)).ok());
  REQUIRE(d.fill_bytes(0xFF).ok());
  REQUIRE(deepshock::rt::device_synchronize().ok());
  return d;
}

/// The first `n` elements of `d` (n > d.size() fails; n = 0 copies nothing).
template <class T>
std::vector<T> download(const deepshock::rt::DeviceBuffer<T>& d, std::size_t n) {
  std::vector<T> h(n);
  REQUIRE(deepshock::rt::device_synchronize().ok());
  REQUIRE(d.copy_to_host(h.data(), n).ok());
  REQUIRE(deepshock::rt::device_synchronize().ok());
  return h;
}
/// Every element of `d`.
template <class T>
std::vector<T> download(const deepshock::rt::DeviceBuffer<T>& d) {
  return download(d, d.size());
}

/// Bitwise equality of two host vectors (reproducibility checks: NaN payloads and -0 count).
template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/// A new stream for tests that run on their own stream.
inline deepshock::rt::Stream make_stream() {
  deepshock::rt::Stream s;
  REQUIRE(s.create().ok());
  return s;
}

}  // namespace ds_test
