// Simulator-only behaviour: schedules, race exposure, error reporting, launch validation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/mma.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/platform/wgmma.hpp"
#include "test_support.hpp"

namespace ds = deepshock;
namespace sim = deepshock::sim;

namespace {

// Declared here, not in kernels.cuh: they only make sense in the simulator.
DEEPSHOCK_KERNEL void racy_shift(const int* in, int* out, int n) {
  int* s = ds::dynamic_smem<int>();
  const int t = static_cast<int>(threadIdx.x);
  if (t < n) s[t] = in[t];
  if (t < n) out[t] = t > 0 ? s[t - 1] : 0;  // missing __syncthreads() (deliberate)
}

/// A 16-byte copy from `src` (misaligned when the caller offsets it) and a cp.async whose
/// source is misaligned when `bad_async`.
DEEPSHOCK_KERNEL void vector_copy(const unsigned char* src, unsigned char* dst, int bad_async) {
  if (bad_async) {
    unsigned char* s = ds::dynamic_smem<unsigned char>();
    ds::mem::cp_async16(s, src + 4, true);
    ds::mem::cp_async_commit();
    ds::mem::cp_async_wait<0>();
  } else {
    ds::mem::copy16(dst, src);
  }
}

/// One wgmma m64n64k16 on swizzled tiles of ones (A at `a_row` rows into the aligned area, B
/// after A; with 1024 + 3 x 64 x 128 bytes of dynamic shared memory at most 200 rows follow the
/// aligned start, so a_row = 144 always runs past the end). mode 1: thread 0 overwrites an A element it uses after the issue, before the wait;
/// otherwise every thread writes its first accumulator read before the wait to early[tid] and
/// after it to late[tid] (16 = 1 x 1 x 16).
DEEPSHOCK_KERNEL void wgmma_probe(int a_row, int mode, float* early, float* late) {
  unsigned char* sa = ds::arch::align_smem_1024(ds::dynamic_smem<unsigned char>());
  unsigned char* sb = sa + 2 * 64 * 128;
  const int tid = static_cast<int>(threadIdx.x);
  const ds::bf16 one(1.0f);
  for (int i = tid; i < 3 * 64 * 64; i += static_cast<int>(blockDim.x)) std::memcpy(sa + 2 * i, &one.bits, 2);
  __syncthreads();
  float acc[32] = {};
  ds::arch::wgmma_fence();
  ds::arch::wgmma_m64k16<ds::bf16, 64>(acc, sa + a_row * 128, sb);
  ds::arch::wgmma_commit();
  if (mode == 1 && tid == 0) {
    const ds::bf16 two(2.0f);
    std::memcpy(sa, &two.bits, 2);  // A(0, 0): row 0 is thread 0's
  }
  early[tid] = acc[0];
  ds::arch::wgmma_wait<0>();
  late[tid] = acc[0];
}

/// ldmatrix .x4 with lane 5's row `offset` bytes from where it should be (16-byte aligned rows in
/// 32 x 16 bytes of dynamic shared memory otherwise); out: lane 0's four words.
DEEPSHOCK_KERNEL void ldmatrix_probe(int offset, unsigned* out) {
  unsigned char* s = ds::dynamic_smem<unsigned char>();
  const int lane = static_cast<int>(threadIdx.x);
  for (int i = 0; i < 16; ++i) s[lane * 16 + i] = static_cast<unsigned char>(lane);
  __syncwarp();
  std::uint32_t r[4];
  ds::arch::ldmatrix<4>(r, s + lane * 16 + (lane == 5 ? offset : 0));
  if (lane == 0)
    for (int i = 0; i < 4; ++i) out[i] = r[i];
}

DEEPSHOCK_KERNEL void mixed_barriers(int* out) {
  // Thread 0 waits at a block barrier while the rest of warp 0 waits for it in a shuffle.
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
  }
}

DEEPSHOCK_KERNEL void mask_without_self(int* out) {
  out[threadIdx.x] = __shfl_sync(0x1u, 1, 0);  // lane 1.. call with a mask that lacks them
}

DEEPSHOCK_KERNEL void different_ops_same_mask(int* out) {
  if (threadIdx.x % 2 == 0) out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  else out[threadIdx.x] = static_cast<int>(__ballot_sync(0xffffffffu, 1));
}

DEEPSHOCK_KERNEL void early_exit_then_shuffle(int* out) {
  if (threadIdx.x == 7) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}

DEEPSHOCK_KERNEL void early_exit_then_shuffle_own(int* out) {
  if (threadIdx.x == 7) return;
  const int partner = threadIdx.x == 6 ? 0 : 1;  // lane 6 must not read lane 7
  out[threadIdx.x] = __shfl_xor_sync(0xffffff7fu, static_cast<int>(threadIdx.x), partner);
}

DEEPSHOCK_KERNEL void exit_while_others_wait(int* out) {
  if (threadIdx.x == 31) {
    __nanosleep(100);  // let the other lanes arrive at the shuffle first
    return;
  }
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

DEEPSHOCK_KERNEL void barrier_predicates_with_exits(int* out, int n) {
  const int t = static_cast<int>(threadIdx.x);
  if (t >= n) return;
  const int all_small = __syncthreads_and(t < 1000);
  const int count_even = __syncthreads_count(t % 2 == 0);
  const int any_big = __syncthreads_or(t > 1000);
  out[3 * t] = all_small;
  out[3 * t + 1] = count_even;
  out[3 * t + 2] = any_big;
}

DEEPSHOCK_KERNEL void traps(int* out) {
  if (threadIdx.x == 3 && blockIdx.x == 1) __trap();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

DEEPSHOCK_KERNEL void exited_threads_count_as_arrived(int* out, int n) {
  const int t = static_cast<int>(threadIdx.x);
  if (t >= n) return;  // common pattern; hardware releases the barrier without them
  out[t] = t;
  __syncthreads();
  out[t] += 1;
}

DEEPSHOCK_KERNEL void record_indices(unsigned* out) {
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned nt = blockDim.x * blockDim.y * blockDim.z;
  out[b * nt + t] = (blockIdx.x << 24) | (blockIdx.y << 20) | (blockIdx.z << 16) | (threadIdx.x << 8) | (threadIdx.y << 4) | threadIdx.z;
}

DEEPSHOCK_KERNEL void modifies_param(int* out, int v) {
  v += static_cast<int>(threadIdx.x);  // each simulated thread owns its parameter copy
  out[threadIdx.x] = v;
}

std::vector<int> run_racy(sim::Schedule s, std::uint64_t seed, const std::vector<int>& in) {
  sim::ScopedOptions scope(s, seed);
  const int n = static_cast<int>(in.size());
  std::vector<int> out(in.size(), -7);
  const ds::Status st =
      ds::launch(racy_shift, {dim3(1), dim3(static_cast<unsigned>(n)), sizeof(int) * in.size()}, in.data(), out.data(), n);
  REQUIRE(st.ok());
  return out;
}

}  // namespace

TEST_CASE("a missing __syncthreads that in-order execution hides is exposed by other schedules", "[sim][race]") {
  auto rng = ds_test::make_rng(0xACE);
  std::vector<int> in(64);
  std::iota(in.begin(), in.end(), 1000);
  std::shuffle(in.begin(), in.end(), rng);
  std::vector<int> correct(in.size());
  for (std::size_t t = 0; t < in.size(); ++t) correct[t] = t ? in[t - 1] : 0;
  // In order, thread t-1 has finished writing before thread t reads: the bug is invisible.
  CHECK(run_racy(sim::Schedule::in_order, 0, in) == correct);
  // Reversed, thread t reads before thread t-1 has written (poisoned shared memory, 0xFFFFFFFF).
  const std::vector<int> rev = run_racy(sim::Schedule::reversed, 0, in);
  CHECK(rev != correct);
  CHECK(rev[1] == -1);
  // Seeded random orders expose it too, reproducibly.
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const std::vector<int> a = run_racy(sim::Schedule::random, seed, in);
    CHECK(a != correct);
    CHECK(a == run_racy(sim::Schedule::random, seed, in));
  }
}

TEST_CASE("the simulator reports deadlocks and misuse of warp operations as a Status", "[sim]") {
  std::vector<int> out(64, 0);
  SECTION("block barrier against a warp shuffle") {
    const ds::Status st = ds::launch(mixed_barriers, {dim3(1), dim3(32)}, out.data());
    CHECK(st.code() == ds::StatusCode::runtime_error);
    CHECK_THAT(st.message(), Catch::Contains("deadlock"));
  }
  SECTION("mask that excludes the calling lane") {
    const ds::Status st = ds::launch(mask_without_self, {dim3(1), dim3(32)}, out.data());
    CHECK_THAT(st.message(), Catch::Contains("does not include the calling lane"));
  }
  SECTION("different operations under one mask") {
    const ds::Status st = ds::launch(different_ops_same_mask, {dim3(1), dim3(32)}, out.data());
    CHECK_THAT(st.message(), Catch::Contains("different warp-synchronous operations"));
  }
  SECTION("__trap names the block") {
    std::vector<int> big(4 * 32, 0);
    const ds::Status st = ds::launch(traps, {dim3(4), dim3(32)}, big.data());
    CHECK_THAT(st.message(), Catch::Contains("block (1,0,0)") && Catch::Contains("__trap"));
  }
  SECTION("misaligned vector accesses fail the launch, as on a GPU") {
    alignas(16) unsigned char buf[64] = {};
    CHECK(ds::launch(vector_copy, {dim3(1), dim3(1)}, buf, buf + 32, 0).ok());
    const ds::Status st = ds::launch(vector_copy, {dim3(1), dim3(1)}, buf + 4, buf + 32, 0);
    CHECK_THAT(st.message(), Catch::Contains("mem::copy16 source: misaligned address"));
    const ds::Status st2 = ds::launch(vector_copy, {dim3(1), dim3(1), 16}, buf, buf + 32, 1);
    CHECK_THAT(st2.message(), Catch::Contains("cp.async: addresses must be aligned"));
  }
  SECTION("the wgmma model: undefined accumulators until the wait, operands fixed while in flight, layout rules") {
    const std::size_t smem = 1024 + 3 * 64 * 128;
    std::vector<float> early(128, 0.0f), late(128, 0.0f);
    REQUIRE(ds::launch(wgmma_probe, {dim3(1), dim3(128), smem}, 0, 0, early.data(), late.data()).ok());
    CHECK(std::all_of(early.begin(), early.end(), [](float v) { return std::isnan(v); }));
    CHECK(std::all_of(late.begin(), late.end(), [](float v) { return v == 16.0f; }));
    const ds::Status changed = ds::launch(wgmma_probe, {dim3(1), dim3(128), smem}, 0, 1, early.data(), late.data());
    CHECK_THAT(changed.message(), Catch::Contains("wgmma: a shared-memory operand changed while the instruction was in flight"));
    const ds::Status unaligned = ds::launch(wgmma_probe, {dim3(1), dim3(128), smem}, 1, 0, early.data(), late.data());
    CHECK_THAT(unaligned.message(), Catch::Contains("wgmma: operand A must start in row 0 of a 1024-byte aligned swizzle atom"));
    const ds::Status partial = ds::launch(wgmma_probe, {dim3(1), dim3(96), smem}, 0, 0, early.data(), late.data());
    CHECK_THAT(partial.message(), Catch::Contains("wgmma: the block must consist of whole warpgroups"));
    const ds::Status outside = ds::launch(wgmma_probe, {dim3(1), dim3(128), smem}, 144, 0, early.data(), late.data());
    CHECK_THAT(outside.message(), Catch::Contains("wgmma: operand A must lie in the block's dynamic shared memory"));
  }
  SECTION("the ldmatrix model: rows in dynamic shared memory, 16-byte aligned") {
    std::vector<unsigned> words(4, 0u);
    REQUIRE(ds::launch(ldmatrix_probe, {dim3(1), dim3(32), 32 * 16}, 0, words.data()).ok());
    // Lane 0 gets word 0 of row 0 of each matrix i, which lane 8i filled with its lane number.
    for (unsigned i = 0; i < 4; ++i) CHECK(words[i] == 0x01010101u * (8 * i));
    const ds::Status misaligned = ds::launch(ldmatrix_probe, {dim3(1), dim3(32), 32 * 16}, 4, words.data());
    CHECK_THAT(misaligned.message(), Catch::Contains("ldmatrix: lane 5's row address is not 16-byte aligned"));
    const ds::Status outside = ds::launch(ldmatrix_probe, {dim3(1), dim3(32), 32 * 16}, 32 * 16, words.data());
    CHECK_THAT(outside.message(), Catch::Contains("ldmatrix: lane 5's row must lie in the block's dynamic shared memory"));
  }
  SECTION("the simulator keeps working after a failed launch") {
    CHECK(!ds::launch(mixed_barriers, {dim3(1), dim3(32)}, out.data()).ok());
    std::vector<int> ok(40, -1);
    CHECK(ds::launch(exited_threads_count_as_arrived, {dim3(1), dim3(64)}, ok.data(), 40).ok());
    for (int t = 0; t < 40; ++t) CHECK(ok[static_cast<std::size_t>(t)] == t + 1);
  }
}

TEST_CASE("warp operations skip lanes that have exited; reading an exited lane is an error", "[sim]") {
  // CUDA requires only the non-exited threads named in a mask to take part, so the operation
  // completes; but a shuffle whose source is such a lane reads an undefined value: a Status.
  for (sim::Schedule s : {sim::Schedule::in_order, sim::Schedule::reversed, sim::Schedule::random}) {
    sim::ScopedOptions scope(s, 7);
    std::vector<int> out(32, 0);
    const ds::Status st = ds::launch(early_exit_then_shuffle, {dim3(1), dim3(32)}, out.data());
    REQUIRE(!st.ok());
    CHECK_THAT(st.message(), Catch::Contains("lane 6 of warp 0 reads lane 7, which has exited"));
    std::vector<int> out2(32, 0);
    const ds::Status st2 = ds::launch(exit_while_others_wait, {dim3(1), dim3(32)}, out2.data());
    REQUIRE(!st2.ok());
    CHECK_THAT(st2.message(), Catch::Contains("lane 30 of warp 0 reads lane 31, which has exited"));
    // The correct twin: the exited lane's partner reads itself instead (width 32, xor 0).
    std::vector<int> out3(32, 0);
    REQUIRE(ds::launch(early_exit_then_shuffle_own, {dim3(1), dim3(32)}, out3.data()).ok());
    for (int l = 0; l < 32; ++l) CHECK(out3[static_cast<std::size_t>(l)] == (l == 7 ? 0 : l == 6 ? 6 : (l ^ 1)));
  }
}

TEST_CASE("counting barriers leave exited threads out", "[sim]") {
  const int n = GENERATE(1, 37, 64);
  for (sim::Schedule s : {sim::Schedule::in_order, sim::Schedule::reversed, sim::Schedule::random}) {
    sim::ScopedOptions scope(s, 3);
    std::vector<int> out(3 * 96, -5);
    REQUIRE(ds::launch(barrier_predicates_with_exits, {dim3(1), dim3(96)}, out.data(), n).ok());
    for (int t = 0; t < n; ++t) {
      CHECK(out[static_cast<std::size_t>(3 * t)] == 1);
      CHECK(out[static_cast<std::size_t>(3 * t + 1)] == (n + 1) / 2);
      CHECK(out[static_cast<std::size_t>(3 * t + 2)] == 0);
    }
  }
}

TEST_CASE("a bad DEEPSHOCK_SIM_SCHEDULE value fails every launch with a named error", "[sim]") {
  sim::Schedule sch{};
  std::uint64_t seed = 0;
  CHECK(sim::detail::parse_schedule("random:42", sch, seed));
  CHECK(sch == sim::Schedule::random);
  CHECK(seed == 42);
  CHECK(sim::detail::parse_schedule("reversed", sch, seed));
  CHECK_FALSE(sim::detail::parse_schedule("randon", sch, seed));
  CHECK_FALSE(sim::detail::parse_schedule("random:12x", sch, seed));
  sim::Options bad = sim::options();
  bad.config_error = "DEEPSHOCK_SIM_SCHEDULE: 'randon' is not in_order, reversed, random or random:<seed>";
  sim::ScopedOptions scope(bad);
  std::vector<int> out(32, 0);
  const ds::Status st = ds::launch(modifies_param, {dim3(1), dim3(32)}, out.data(), 1);
  CHECK(st.code() == ds::StatusCode::invalid_argument);
  CHECK_THAT(st.message(), Catch::Contains("DEEPSHOCK_SIM_SCHEDULE"));
}

TEST_CASE("launch validates its configuration like CUDA", "[sim]") {
  std::vector<int> out(2048, 0);
  CHECK(ds::launch(modifies_param, {dim3(1), dim3(2048)}, out.data(), 1).code() == ds::StatusCode::invalid_argument);
  CHECK(ds::launch(modifies_param, {dim3(0), dim3(32)}, out.data(), 1).code() == ds::StatusCode::invalid_argument);
  CHECK(ds::launch(modifies_param, {dim3(1), dim3(1, 1, 65)}, out.data(), 1).code() == ds::StatusCode::invalid_argument);
  const ds::Status big_smem = ds::launch(modifies_param, {dim3(1), dim3(32), 1u << 30}, out.data(), 1);
  CHECK(big_smem.code() == ds::StatusCode::invalid_argument);
  CHECK_THAT(big_smem.message(), Catch::StartsWith("smem_bytes"));
  void (*null_kernel)(int*, int) = nullptr;
  CHECK(ds::launch(null_kernel, {dim3(1), dim3(32)}, out.data(), 1).code() == ds::StatusCode::invalid_argument);
}

TEST_CASE("built-in index variables cover 3-D grids and blocks in every schedule", "[sim]") {
  const dim3 grid(3, 2, 2), block(5, 3, 2);
  const unsigned nt = 30, nb = 12;
  for (sim::Schedule s : {sim::Schedule::in_order, sim::Schedule::reversed, sim::Schedule::random}) {
    sim::ScopedOptions scope(s, 99);
    std::vector<unsigned> out(nb * nt, 0xdeadbeefu);
    REQUIRE(ds::launch(record_indices, {grid, block}, out.data()).ok());
    for (unsigned bz = 0; bz < 2; ++bz)
      for (unsigned by = 0; by < 2; ++by)
        for (unsigned bx = 0; bx < 3; ++bx)
          for (unsigned tz = 0; tz < 2; ++tz)
            for (unsigned ty = 0; ty < 3; ++ty)
              for (unsigned tx = 0; tx < 5; ++tx) {
                const unsigned b = bx + 3 * (by + 2 * bz), t = tx + 5 * (ty + 3 * tz);
                CHECK(out[b * nt + t] == ((bx << 24) | (by << 20) | (bz << 16) | (tx << 8) | (ty << 4) | tz));
              }
  }
}

TEST_CASE("each simulated thread gets its own copy of the kernel parameters", "[sim]") {
  std::vector<int> out(96, 0);
  REQUIRE(ds::launch(modifies_param, {dim3(1), dim3(96)}, out.data(), 10).ok());
  for (int t = 0; t < 96; ++t) CHECK(out[static_cast<std::size_t>(t)] == 10 + t);
}

TEST_CASE("the runtime facade works in the simulator", "[sim]") {
  CHECK(std::string(ds::rt::backend_name()) == "simulator");
  CHECK(ds::rt::device_available());
  ds::rt::DeviceBuffer<float> buf;
  REQUIRE(buf.allocate(100).ok());
  std::vector<float> h(100, 1.5f), back(100, 0.0f);
  REQUIRE(buf.copy_from_host(h.data(), h.size()).ok());
  REQUIRE(buf.copy_to_host(back.data(), back.size()).ok());
  CHECK(back == h);
  CHECK(buf.copy_from_host(h.data(), 101).code() == ds::StatusCode::out_of_range);
  ds::rt::Stream stream;
  REQUIRE(stream.create().ok());
  ds::rt::Event a, b;
  REQUIRE(a.create().ok());
  REQUIRE(b.create().ok());
  REQUIRE(a.record(stream.get()).ok());
  REQUIRE(b.record(stream.get()).ok());
  float ms = -1.0f;
  REQUIRE(ds::rt::Event::elapsed_ms(a, b, ms).ok());
  CHECK(ms >= 0.0f);
  ds::rt::Event never;
  CHECK(ds::rt::Event::elapsed_ms(never, b, ms).code() == ds::StatusCode::invalid_argument);
}
