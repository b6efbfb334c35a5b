// The simulator's blind spots, closed: each check has a buggy kernel that must be reported and
// a correct twin that must pass under every schedule (and, through CI, under ASan+UBSan and
// TSan). The sanitizer-only reports (reads past a static shared variable or a device
// allocation) are proven by the programs in tests/sanitizer/.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "deepshock/platform/block.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/platform/warp.hpp"

namespace ds = deepshock;
namespace sim = deepshock::sim;

namespace {

/// The schedules every check runs under: in order, reversed and three seeded random orders.
std::vector<sim::Options> schedules(unsigned resident = 1) {
  std::vector<sim::Options> v;
  for (int i = 0; i < 5; ++i) {
    sim::Options o = sim::options();
    o.schedule = i == 0 ? sim::Schedule::in_order : i == 1 ? sim::Schedule::reversed : sim::Schedule::random;
    o.seed = 0x1234u + static_cast<unsigned>(i);
    o.resident_blocks = resident;
    v.push_back(o);
  }
  return v;
}
std::string describe(const sim::Options& o) {
  return std::string(sim::to_string(o.schedule)) + " seed " + std::to_string(o.seed) + " resident " + std::to_string(o.resident_blocks);
}

// ---- 1. divergent barriers -------------------------------------------------------------------

// The two barrier lines below are kDivergentLine and kDivergentLine + 2 (kept in step by hand).
constexpr int kDivergentLine = __LINE__ + 4;
DEEPSHOCK_KERNEL void divergent_barriers(int* out) {
  const int t = static_cast<int>(threadIdx.x);
  if (t % 3 == 0) {
    __syncthreads();  // kDivergentLine
  } else {
    __syncthreads();  // kDivergentLine + 2
  }
  out[t] = t;
}

/// Correct twin: one barrier site in a loop that every thread runs the same (data-dependent)
/// number of times, and a barrier after a branch.
DEEPSHOCK_KERNEL void uniform_loop_barriers(const int* rounds, int* out) {
  int* s = ds::dynamic_smem<int>();
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  int acc = 0;
  for (int r = 0; r < rounds[blockIdx.x]; ++r) {
    s[t] = t + r;
    __syncthreads();
    acc += s[(t + 1) % n];
    __syncthreads();
  }
  if (t % 3 == 0) acc += 1;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

// ---- 2. static __shared__ arrays ---------------------------------------------------------------

/// Only block 0 fills the array; other blocks read it before any write (the bug): they used to
/// see block 0's data, which looks right.
DEEPSHOCK_KERNEL void stale_static_smem(int fill_all, float* out) {
  __shared__ float s[64];
  const int t = static_cast<int>(threadIdx.x);
  if (fill_all || blockIdx.x == 0) s[t] = static_cast<float>(t);
  __syncthreads();
  out[blockIdx.x * 64 + t] = s[t];
}

#if !DEEPSHOCK_SIM_ASAN  // their checks are canaries; under ASan tests/sanitizer/ proves the reports
/// `n` threads store through a pointer into a 32-int static array (n = 33: one past the end).
DEEPSHOCK_KERNEL void static_smem_store(int n, int* out) {
  __shared__ int a[32];
  int* p = a;
  const int t = static_cast<int>(threadIdx.x);
  if (t < n) p[t] = t;
  __syncthreads();
  if (t < 32) out[t] = a[t];
}

// ---- 3. device memory past its end -------------------------------------------------------------

DEEPSHOCK_KERNEL void write_bytes(unsigned char* p, int n) {
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) p[i] = 7;
}

#endif

// ---- 5. __shared__ __align__(16) ---------------------------------------------------------------

DEEPSHOCK_KERNEL void aligned_static_smem(const float* in, float* out, unsigned* misaligned) {
  __shared__ __align__(16) float buf[8];
  __shared__ __align__(16) unsigned char bytes[48];
  const int t = static_cast<int>(threadIdx.x);
  if (t < 2) ds::mem::copy16(buf + 4 * t, in + 4 * t);  // faults on a misaligned address
  if (t == 0)
    *misaligned = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(buf) % 16 + reinterpret_cast<std::uintptr_t>(bytes) % 16);
  __syncthreads();
  if (t < 8) out[t] = buf[t];
}

// ---- 4. shuffles in a partial warp ----------------------------------------------------------

/// A block of 40 threads: warp 1 has lanes 0..7. `named`: the mask names all 32 lanes.
DEEPSHOCK_KERNEL void partial_warp_shuffle(int named, int* out) {
  const int t = static_cast<int>(threadIdx.x);
  const unsigned mask = t < 32 ? 0xffffffffu : named ? 0xffffffffu : ds::warp::lanes_mask(8);
  out[t] = __shfl_xor_sync(mask, t, t < 32 ? 16 : 8);  // warp 1's lanes 0..7 read lanes 8..15
}

// ---- 6. blocks that wait for each other --------------------------------------------------------

/// Block 1 publishes data and then a flag; block 0 spins on the flag (an atomic poll) and
/// copies the data. Needs both blocks resident at once.
DEEPSHOCK_KERNEL void flag_handoff(int* flag, int* data, int* out) {
  const int t = static_cast<int>(threadIdx.x);
  if (blockIdx.x == 1) {
    data[t] = 100 + t;
    __threadfence();
    __syncthreads();
    if (t == 0) atomicExch(flag, 1);
  } else {
    if (t == 0)
      while (atomicAdd(flag, 0) == 0) {}
    __syncthreads();
    out[t] = data[t];
  }
}

/// A grid-wide barrier on a counter: every block must be resident at once.
DEEPSHOCK_KERNEL void grid_barrier(unsigned* count, int* out) {
  if (threadIdx.x == 0) {
    atomicAdd(count, 1u);
    while (atomicAdd(count, 0u) < gridDim.x) __nanosleep(32);
  }
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = 1;
}

/// Each block keeps its index in static shared memory across a wait for the other blocks
/// (so that their turns interleave); every block must read back its own value.
DEEPSHOCK_KERNEL void static_smem_per_block(unsigned* count, int* out) {
  __shared__ int mine[32];
  const int t = static_cast<int>(threadIdx.x);
  mine[t] = static_cast<int>(blockIdx.x) * 1000 + t;
  __syncthreads();
  if (t == 0) {
    atomicAdd(count, 1u);
    while (atomicAdd(count, 0u) < gridDim.x) {}
  }
  __syncthreads();
  out[blockIdx.x * 32 + t] = mine[(t + 1) % 32];
}

/// "The last block to arrive sums": each block stores its partial, fences, takes a ticket; the
/// block with the last ticket adds the partials in block order and resets the ticket.
DEEPSHOCK_KERNEL void last_block_sums(const float* x, float* partials, unsigned* ticket, float* total, int per_block) {
  __shared__ float scratch[ds::block::kScratchWords];
  __shared__ int is_last;
  float v = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < per_block; i += static_cast<int>(blockDim.x)) v += x[blockIdx.x * per_block + i];
  v = ds::block::reduce_sum(v, scratch);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = v;
    __threadfence();
    is_last = atomicAdd(ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (is_last && threadIdx.x == 0) {
    float s = 0.0f;
    for (unsigned b = 0; b < gridDim.x; ++b) s += partials[b];
    *total = s;
    *ticket = 0;
  }
}

}  // namespace

TEST_CASE("divergent __syncthreads call sites are reported naming both", "[sim]") {
  std::vector<int> out(96, -1);
  for (const sim::Options& o : schedules()) {
    INFO(describe(o));
    sim::ScopedOptions scope(o);
    const ds::Status st = ds::launch(divergent_barriers, {dim3(2), dim3(96)}, out.data());
    REQUIRE(st.code() == ds::StatusCode::runtime_error);
    CHECK_THAT(st.message(), Catch::Contains("divergent __syncthreads"));
    CHECK_THAT(st.message(), Catch::Contains("test_sim_checks.cpp:" + std::to_string(kDivergentLine) + ":"));
    CHECK_THAT(st.message(), Catch::Contains("test_sim_checks.cpp:" + std::to_string(kDivergentLine + 2) + ":"));
  }
}

TEST_CASE("a barrier in a uniform loop and after a branch is legal", "[sim]") {
  const unsigned B = 67;
  const std::vector<int> rounds = {0, 1, 3, 2};
  std::vector<int> expect(4 * B);
  for (int b = 0; b < 4; ++b)
    for (unsigned t = 0; t < B; ++t) {
      int acc = 0;
      for (int r = 0; r < rounds[b]; ++r) acc += static_cast<int>((t + 1) % B) + r;
      expect[b * B + t] = acc + (t % 3 == 0);
    }
  for (unsigned resident : {1u, 3u})
    for (const sim::Options& o : schedules(resident)) {
      INFO(describe(o));
      sim::ScopedOptions scope(o);
      std::vector<int> out(4 * B, -1);
      REQUIRE(ds::launch(uniform_loop_barriers, {dim3(4), dim3(B), B * sizeof(int)}, rounds.data(), out.data()).ok());
      CHECK(out == expect);
    }
}

TEST_CASE("static __shared__ arrays are poisoned before every block", "[sim]") {
  for (unsigned resident : {1u, 2u})
    for (const sim::Options& o : schedules(resident)) {
      INFO(describe(o));
      sim::ScopedOptions scope(o);
      std::vector<float> out(3 * 64, 0.0f);
      REQUIRE(ds::launch(stale_static_smem, {dim3(3), dim3(64)}, 0, out.data()).ok());
      for (int b = 0; b < 3; ++b)
        for (int t = 0; t < 64; ++t) {
          const float v = out[static_cast<std::size_t>(b * 64 + t)];
          // Block 0 filled its array; the others read poison (NaN), never block 0's values.
          if (b == 0) CHECK(v == static_cast<float>(t));
          else CHECK(std::isnan(v));
        }
      REQUIRE(ds::launch(stale_static_smem, {dim3(3), dim3(64)}, 1, out.data()).ok());
      for (int i = 0; i < 3 * 64; ++i) CHECK(out[static_cast<std::size_t>(i)] == static_cast<float>(i % 64));
    }
}

TEST_CASE("the simulator finds every static __shared__ variable and fences it", "[sim]") {
  const sim::detail::StaticSmem& s = sim::detail::static_smem();
  REQUIRE(s.found);
  bool stale = false, per_block = false;
  for (const sim::detail::SmemVar& v : s.vars) {
    stale = stale || (v.name.find("stale_static_smem") != std::string::npos && v.size == 64 * sizeof(float));
    per_block = per_block || (v.name.find("static_smem_per_block") != std::string::npos && v.size == 32 * sizeof(int));
  }
  CHECK(stale);
  CHECK(per_block);
  CHECK(s.unfenced == 0);  // every variable has a redzone after it
  CHECK(s.zones.size() == s.vars.size());
}

#if !DEEPSHOCK_SIM_ASAN  // under ASan the poisoned redzone reports it (tests/sanitizer/static_smem_oob_asan.cpp)
TEST_CASE("a write past a static __shared__ array fails the launch naming the array", "[sim]") {
  for (const sim::Options& o : schedules()) {
    INFO(describe(o));
    sim::ScopedOptions scope(o);
    std::vector<int> out(32, -1);
    const ds::Status st = ds::launch(static_smem_store, {dim3(2), dim3(33)}, 33, out.data());
    REQUIRE(st.code() == ds::StatusCode::runtime_error);
    CHECK_THAT(st.message(), Catch::Contains("out-of-bounds write to static shared memory: byte 0 past the end of __shared__"));
    CHECK_THAT(st.message(), Catch::Contains("static_smem_store"));
    // The correct twin right after: the canaries were restored.
    REQUIRE(ds::launch(static_smem_store, {dim3(2), dim3(33)}, 32, out.data()).ok());
    for (int t = 0; t < 32; ++t) CHECK(out[static_cast<std::size_t>(t)] == t);
  }
}

TEST_CASE("a write past the end of a device allocation fails the launch", "[sim]") {
  void* p = nullptr;
  REQUIRE(ds::rt::malloc_device(&p, 100).ok());
  auto* bytes = static_cast<unsigned char*>(p);
  for (const sim::Options& o : schedules()) {
    INFO(describe(o));
    sim::ScopedOptions scope(o);
    REQUIRE(ds::launch(write_bytes, {dim3(1), dim3(32)}, bytes, 100).ok());  // the twin: exactly 100 bytes
    const ds::Status st = ds::launch(write_bytes, {dim3(1), dim3(32)}, bytes, 101);
    REQUIRE(st.code() == ds::StatusCode::runtime_error);
    CHECK_THAT(st.message(), Catch::Contains("out-of-bounds write to device memory: byte 0 past the end of an allocation of 100 bytes"));
  }
  bytes[150] = 0;  // past the end, by the host: free_device reports it
  const ds::Status st = ds::rt::free_device(p);
  CHECK(st.code() == ds::StatusCode::runtime_error);
  CHECK_THAT(st.message(), Catch::Contains("byte 50 past the end of an allocation of 100 bytes"));
  CHECK(ds::rt::free_device(p).code() == ds::StatusCode::invalid_argument);  // freed already
}
#endif

TEST_CASE("__shared__ __align__(16) compiles and aligns", "[sim]") {
  const std::vector<float> in = {1, 2, 3, 4, 5, 6, 7, 8};
  for (const sim::Options& o : schedules()) {
    INFO(describe(o));
    sim::ScopedOptions scope(o);
    std::vector<float> out(8, 0.0f);
    unsigned misaligned = 99;
    REQUIRE(ds::launch(aligned_static_smem, {dim3(2), dim3(32)}, in.data(), out.data(), &misaligned).ok());
    CHECK(misaligned == 0);
    CHECK(out == in);
  }
}

TEST_CASE("a shuffle that names a lane a partial warp does not have is an error", "[sim]") {
  for (const sim::Options& o : schedules()) {
    INFO(describe(o));
    sim::ScopedOptions scope(o);
    std::vector<int> out(40, -1);
    const ds::Status st = ds::launch(partial_warp_shuffle, {dim3(1), dim3(40)}, 1, out.data());
    REQUIRE(st.code() == ds::StatusCode::runtime_error);
    CHECK_THAT(st.message(), Catch::Contains("of warp 1 reads lane"));
    CHECK_THAT(st.message(), Catch::Contains("which this partial warp does not have"));
    // The twin names only the lanes it has; its reads of lanes 8..15 are outside the mask.
    REQUIRE(ds::launch(partial_warp_shuffle, {dim3(1), dim3(40)}, 0, out.data()).ok());
    for (int t = 0; t < 32; ++t) CHECK(out[static_cast<std::size_t>(t)] == (t ^ 16));
  }
}

TEST_CASE("resident blocks: a spin on another block's flag makes progress", "[sim][resident]") {
  for (unsigned resident : {2u, 4u})
    for (const sim::Options& o : schedules(resident)) {
      INFO(describe(o));
      sim::ScopedOptions scope(o);
      int flag = 0;
      std::vector<int> data(64, 0), out(64, -1);
      REQUIRE(ds::launch(flag_handoff, {dim3(2), dim3(64)}, &flag, data.data(), out.data()).ok());
      for (int t = 0; t < 64; ++t) CHECK(out[static_cast<std::size_t>(t)] == 100 + t);
    }
  // One block at a time, block 0 first: it waits for a block that never runs beside it.
  sim::Options o = schedules(1)[0];
  sim::ScopedOptions scope(o);
  int flag = 0;
  std::vector<int> data(64, 0), out(64, -1);
  const ds::Status st = ds::launch(flag_handoff, {dim3(2), dim3(64)}, &flag, data.data(), out.data());
  REQUIRE(st.code() == ds::StatusCode::runtime_error);
  CHECK_THAT(st.message(), Catch::Contains("livelock"));
  CHECK_THAT(st.message(), Catch::Contains("1 block(s) of the grid are not resident yet"));
}

TEST_CASE("resident blocks: waiting for a block that cannot be resident is a deadlock", "[sim][resident]") {
  for (const sim::Options& o : schedules(3)) {
    INFO(describe(o));
    sim::ScopedOptions scope(o);
    unsigned count = 0;
    std::vector<int> out(3, 0);
    REQUIRE(ds::launch(grid_barrier, {dim3(3), dim3(32)}, &count, out.data()).ok());
    CHECK(out == std::vector<int>(3, 1));
  }
  for (const sim::Options& o : schedules(2)) {
    INFO(describe(o));
    sim::ScopedOptions scope(o);
    unsigned count = 0;
    std::vector<int> out(3, 0);
    const ds::Status st = ds::launch(grid_barrier, {dim3(3), dim3(32)}, &count, out.data());
    REQUIRE(st.code() == ds::StatusCode::runtime_error);
    CHECK_THAT(st.message(), Catch::Contains("livelock"));
    CHECK_THAT(st.message(), Catch::Contains("DEEPSHOCK_SIM_RESIDENT_BLOCKS"));
  }
}

TEST_CASE("resident blocks: each block has its own static shared memory", "[sim][resident]") {
  for (const sim::Options& o : schedules(4)) {
    INFO(describe(o));
    sim::ScopedOptions scope(o);
    unsigned count = 0;
    std::vector<int> out(4 * 32, -1);
    REQUIRE(ds::launch(static_smem_per_block, {dim3(4), dim3(32)}, &count, out.data()).ok());
    for (int b = 0; b < 4; ++b)
      for (int t = 0; t < 32; ++t) CHECK(out[static_cast<std::size_t>(b * 32 + t)] == b * 1000 + (t + 1) % 32);
  }
}

TEST_CASE("resident blocks: the last block to arrive sums, whichever it is", "[sim][resident]") {
  const int G = 7, per_block = 50;
  std::vector<float> x(G * per_block);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) * 0.25f;
  float expect = 0.0f;
  {  // the same sums in the same order
    std::vector<float> p(G, 0.0f);
    sim::ScopedOptions scope(schedules(1)[0]);
    std::vector<float> partials(G);
    unsigned ticket = 0;
    REQUIRE(ds::launch(last_block_sums, {dim3(G), dim3(64)}, x.data(), partials.data(), &ticket, &expect, per_block).ok());
  }
  for (unsigned resident : {1u, 3u, 7u})
    for (const sim::Options& o : schedules(resident)) {
      INFO(describe(o));
      sim::ScopedOptions scope(o);
      std::vector<float> partials(G, std::nanf(""));
      unsigned ticket = 0;
      float total = std::nanf("");
      REQUIRE(ds::launch(last_block_sums, {dim3(G), dim3(64)}, x.data(), partials.data(), &ticket, &total, per_block).ok());
      CHECK(ticket == 0u);
      CHECK(std::memcmp(&total, &expect, sizeof total) == 0);
    }
}

TEST_CASE("DEEPSHOCK_SIM_RESIDENT_BLOCKS is parsed and checked", "[sim][resident]") {
  unsigned long v = 0;
  CHECK(sim::detail::parse_unsigned("4", 1, sim::kMaxResidentBlocks, v));
  CHECK(v == 4);
  CHECK_FALSE(sim::detail::parse_unsigned("0", 1, sim::kMaxResidentBlocks, v));
  CHECK_FALSE(sim::detail::parse_unsigned("65", 1, sim::kMaxResidentBlocks, v));
  CHECK_FALSE(sim::detail::parse_unsigned("2x", 1, sim::kMaxResidentBlocks, v));
  CHECK_FALSE(sim::detail::parse_unsigned("", 1, sim::kMaxResidentBlocks, v));
}
