// deepshock/sim/device_memory.hpp — "device" memory of the simulator (host memory), with
// its out-of-bounds guard.
//
// cudaMalloc hands out memory in units of 256 bytes, so on a GPU a kernel that reads or writes
// a little past the size it asked for silently gets away with it — until the allocation sits
// at the end of a page. The simulator does not hide that: under AddressSanitizer an allocation
// has exactly the requested size (ASan's own redzone follows it: an access past the end is a
// heap-buffer-overflow report); without ASan it is rounded up to 256 bytes as on a GPU and the
// tail is a canary, checked after every launch and when the memory is freed, so a write past
// the end fails the launch that made it (a read past the end needs ASan to be seen).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "deepshock/core/status.hpp"
#include "deepshock/sim/fiber.hpp"

namespace deepshock::sim::detail {

inline constexpr std::size_t kDeviceAlignment = 256;

/// Live allocations (address -> requested bytes), process-wide as device memory is.
struct DeviceAllocations {
  std::mutex m;
  std::unordered_map<void*, std::size_t> live;
};
inline DeviceAllocations& device_allocations() {
  static DeviceAllocations a;
  return a;
}

inline std::size_t rounded_device_bytes(std::size_t bytes) { return (bytes + kDeviceAlignment - 1) / kDeviceAlignment * kDeviceAlignment; }
inline unsigned char tail_canary(std::size_t i) { return static_cast<unsigned char>(0x5Au ^ (13u * i)); }

/// "" if the canary after `p` (requested `bytes`) is intact, else what changed (restored).
inline std::string check_tail(void* p, std::size_t bytes) {
#if DEEPSHOCK_SIM_ASAN
  (void)p;
  (void)bytes;
  return {};
#else
  auto* tail = static_cast<unsigned char*>(p) + bytes;
  const std::size_t n = rounded_device_bytes(bytes) - bytes;
  std::string what;
  for (std::size_t i = 0; i < n; ++i)
    if (tail[i] != tail_canary(i)) {
      if (what.empty())
        what = "out-of-bounds write to device memory: byte " + std::to_string(i) + " past the end of an allocation of " +
               std::to_string(bytes) + " bytes changed";
      tail[i] = tail_canary(i);
    }
  return what;
#endif
}

inline Status allocate_device(void** ptr, std::size_t bytes) {
  void* p = nullptr;
#if DEEPSHOCK_SIM_ASAN
  if (::posix_memalign(&p, kDeviceAlignment, bytes) != 0) p = nullptr;
#else
  p = std::aligned_alloc(kDeviceAlignment, rounded_device_bytes(bytes));
#endif
  if (!p) return Status::resource_exhausted("bytes", "host allocation of " + std::to_string(bytes) + " failed");
#if !DEEPSHOCK_SIM_ASAN
  for (std::size_t i = 0, n = rounded_device_bytes(bytes) - bytes; i < n; ++i) static_cast<unsigned char*>(p)[bytes + i] = tail_canary(i);
#endif
  DeviceAllocations& a = device_allocations();
  std::lock_guard<std::mutex> lock(a.m);
  a.live[p] = bytes;
  *ptr = p;
  return Status::success();
}

/// Frees `p` (null: nothing); an overrun canary is reported after the memory is freed.
inline Status free_device(void* p) {
  if (!p) return Status::success();
  DeviceAllocations& a = device_allocations();
  std::size_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(a.m);
    auto it = a.live.find(p);
    if (it == a.live.end()) return Status::invalid_argument("ptr", "was not allocated by malloc_device (or was freed already)");
    bytes = it->second;
    a.live.erase(it);
  }
  const std::string what = check_tail(p, bytes);
  std::free(p);
  return what.empty() ? Status::success() : Status::runtime_error("simulator: free_device: " + what);
}

/// After a launch: every live allocation's canary.
inline Status check_device_allocations() {
#if DEEPSHOCK_SIM_ASAN
  return Status::success();
#else
  DeviceAllocations& a = device_allocations();
  std::lock_guard<std::mutex> lock(a.m);
  for (auto& [p, bytes] : a.live)
    if (std::string what = check_tail(p, bytes); !what.empty()) return Status::runtime_error("simulator: " + what);
  return Status::success();
#endif
}

}  // namespace deepshock::sim::detail
