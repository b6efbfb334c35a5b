// bench/bench_ep.cu — expert parallelism's dispatch on one GPU against the usual CUB approach
// (nvcc, Google Benchmark, CUDA-event manual time after an L2 flush, as the other GPU benchmarks).
//
//   dispatch/deepshock/<E>x<k>/T:n       moe::dispatch: the stable counting sort of the T*k
//                                        (token, slot) assignments by expert (one kernel, or
//                                        count / scan / place for large n)
//   dispatch/cub_radix_sort/<E>x<k>/T:n  the usual approach on CCCL: cub::DeviceRadixSort::SortPairs
//                                        of (expert id, assignment index) over the id's bits,
//                                        cub::DeviceHistogram::HistogramEven for the counts,
//                                        cub::DeviceScan::ExclusiveSum for the offsets, and one
//                                        kernel for sorted_token and slot_position: the same five
//                                        outputs, checked equal to moe::dispatch's before timing
// (E, k): DeepSeek-V2-Lite (64, 6) and DeepSeek-V3 (256, 8); T from 1 to 16384 tokens. Both
// dispatches count the same bytes (the ids read twice, the three [n] outputs, counts and
// offsets), so their bytes_per_second compare directly. One ep::DeviceEp rank against Layer::run
// is bench_moe's ep_step/ rows (they share its layer instantiation); the multi-GPU exchange
// (NCCL, 8 and 16 ranks) cannot run on one GPU: README "Expert parallelism" models its bytes.
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <cub/device/device_histogram.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "bench_util.hpp"
#include "deepshock/moe/dispatch.hpp"

namespace {
namespace ds = deepshock;
namespace bench = deepshock::bench;
using ds::Status;

/// Bytes a dispatch must move for n assignments over E experts (as bench_moe's dispatch/ rows).
double dispatch_bytes(double n, double E) { return 4.0 * (2.0 * n + 3.0 * n) + 4.0 * (2.0 * E + 1); }

/// T tokens' ids: k distinct experts per token, uniform over E (seeded).
std::vector<int> random_ids(int T, int E, int k) {
  std::mt19937_64 rng(0xE9D15 + static_cast<std::uint64_t>(T));
  std::vector<int> all(static_cast<std::size_t>(E)), ids;
  for (int e = 0; e < E; ++e) all[static_cast<std::size_t>(e)] = e;
  for (int t = 0; t < T; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    ids.insert(ids.end(), all.begin(), all.begin() + k);
  }
  return ids;
}

/// sorted_token[i] = a / k and slot_position[a] = i for a = sorted assignment i.
__global__ void finish_sorted_kernel(const int* sorted, long long n, int k, int* sorted_token, int* slot_position) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int a = sorted[i];
  sorted_token[i] = a / k;
  slot_position[a] = static_cast<int>(i);
}

__global__ void iota_kernel(int* v, long long n) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) v[i] = static_cast<int>(i);
}

/// The dispatch outputs and their buffers.
struct DispatchBuffers {
  ds::rt::DeviceBuffer<int> ids, counts, offsets, sorted_token, sorted_slot, position;
  Status init(const std::vector<int>& h, int E) {
    const std::size_t n = h.size();
    DEEPSHOCK_RETURN_IF_ERROR(ids.allocate(n));
    DEEPSHOCK_RETURN_IF_ERROR(ids.copy_from_host(h.data(), n));
    DEEPSHOCK_RETURN_IF_ERROR(counts.allocate(static_cast<std::size_t>(E)));
    DEEPSHOCK_RETURN_IF_ERROR(offsets.allocate(static_cast<std::size_t>(E) + 1));
    DEEPSHOCK_RETURN_IF_ERROR(sorted_token.allocate(n));
    DEEPSHOCK_RETURN_IF_ERROR(sorted_slot.allocate(n));
    DEEPSHOCK_RETURN_IF_ERROR(position.allocate(n));
    return ds::rt::device_synchronize();
  }
  ds::moe::DispatchOutputs view() {
    ds::moe::DispatchOutputs o;
    o.expert_counts = counts.data();
    o.expert_offsets = offsets.data();
    o.sorted_token = sorted_token.data();
    o.sorted_slot = sorted_slot.data();
    o.slot_position = position.data();
    return o;
  }
  Status download(std::vector<int>& slots, std::vector<int>& offs) const {
    slots.resize(sorted_slot.size());
    offs.resize(offsets.size());
    DEEPSHOCK_RETURN_IF_ERROR(sorted_slot.copy_to_host(slots.data(), slots.size()));
    DEEPSHOCK_RETURN_IF_ERROR(offsets.copy_to_host(offs.data(), offs.size()));
    return ds::rt::device_synchronize();
  }
};

/// The CUB baseline (see the file comment) with its temporary storage.
struct CubDispatch {
  int E = 0, k = 0, bits = 0;
  long long n = 0;
  ds::rt::DeviceBuffer<int> iota, keys_out;
  ds::rt::DeviceBuffer<unsigned char> temp;
  std::size_t sort_bytes = 0, hist_bytes = 0, scan_bytes = 0;
  Status init(int experts, int topk, long long assignments) {
    E = experts, k = topk, n = assignments;
    while ((1 << bits) < E) ++bits;
    DEEPSHOCK_RETURN_IF_ERROR(iota.allocate(static_cast<std::size_t>(n)));
    DEEPSHOCK_RETURN_IF_ERROR(keys_out.allocate(static_cast<std::size_t>(n)));
    DEEPSHOCK_RETURN_IF_ERROR(
        ds::launch(iota_kernel, {dim3(static_cast<unsigned>((n + 255) / 256)), dim3(256), 0, nullptr}, iota.data(), n));
    auto q = [](cudaError_t e, const char* what) { return ds::rt::from_cuda(e, what); };
    DEEPSHOCK_RETURN_IF_ERROR(
        q(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, static_cast<const int*>(nullptr), static_cast<int*>(nullptr),
                                          static_cast<const int*>(nullptr), static_cast<int*>(nullptr), n, 0, bits),
          "cub::DeviceRadixSort::SortPairs (size)"));
    DEEPSHOCK_RETURN_IF_ERROR(q(cub::DeviceHistogram::HistogramEven(nullptr, hist_bytes, static_cast<const int*>(nullptr),
                                                                    static_cast<int*>(nullptr), E + 1, 0, E, n),
                                "cub::DeviceHistogram::HistogramEven (size)"));
    DEEPSHOCK_RETURN_IF_ERROR(
        q(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, static_cast<const int*>(nullptr), static_cast<int*>(nullptr), E + 1),
          "cub::DeviceScan::ExclusiveSum (size)"));
    DEEPSHOCK_RETURN_IF_ERROR(temp.allocate(std::max({sort_bytes, hist_bytes, scan_bytes, std::size_t(1)})));
    return ds::rt::device_synchronize();
  }
  /// offsets needs E + 1 ints: the scan runs over counts followed by one zero... written here.
  Status run(DispatchBuffers& b, ds::rt::DeviceBuffer<int>& counts_plus, ds::rt::stream_t s) {
    auto q = [](cudaError_t e, const char* what) { return ds::rt::from_cuda(e, what); };
    std::size_t bytes = sort_bytes;
    DEEPSHOCK_RETURN_IF_ERROR(q(cub::DeviceRadixSort::SortPairs(temp.data(), bytes, b.ids.data(), keys_out.data(), iota.data(),
                                                                b.sorted_slot.data(), n, 0, bits, s),
                                "cub::DeviceRadixSort::SortPairs"));
    bytes = hist_bytes;
    DEEPSHOCK_RETURN_IF_ERROR(
        q(cub::DeviceHistogram::HistogramEven(temp.data(), bytes, b.ids.data(), counts_plus.data(), E + 1, 0, E, n, s),
          "cub::DeviceHistogram::HistogramEven"));
    bytes = scan_bytes;
    DEEPSHOCK_RETURN_IF_ERROR(q(cub::DeviceScan::ExclusiveSum(temp.data(), bytes, counts_plus.data(), b.offsets.data(), E + 1, s),
                                "cub::DeviceScan::ExclusiveSum"));
    return ds::launch(finish_sorted_kernel, {dim3(static_cast<unsigned>((n + 255) / 256)), dim3(256), 0, s}, b.sorted_slot.data(), n, k,
                      b.sorted_token.data(), b.position.data());
  }
};

/// Arg T. E, k: the model's routing shape.
template <int E, int K, bool Cub>
void BM_dispatch(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  const long long n = static_cast<long long>(T) * K;
  bench::GpuContext g;
  if (!bench::ok_or_skip(state, g.init())) return;
  DispatchBuffers b;
  if (!bench::ok_or_skip(state, b.init(random_ids(T, E, K), E))) return;
  ds::rt::DeviceBuffer<unsigned char> ws;
  const std::size_t ws_bytes = ds::moe::dispatch_workspace_bytes(T, K, E);
  if (!bench::ok_or_skip(state, ws.allocate(std::max<std::size_t>(ws_bytes, 1)))) return;
  // The reference outputs: moe::dispatch once.
  std::vector<int> want_slots, want_offsets;
  if (!bench::ok_or_skip(state, ds::moe::dispatch(b.ids.data(), T, K, E, b.view(), ws.data(), ws_bytes, g.s())) ||
      !bench::ok_or_skip(state, b.download(want_slots, want_offsets)))
    return;
  CubDispatch cub_dispatch;
  ds::rt::DeviceBuffer<int> counts_plus;  // E histogram bins + the zero the exclusive scan turns into the total
  if constexpr (Cub) {
    if (!bench::ok_or_skip(state, cub_dispatch.init(E, K, n)) || !bench::ok_or_skip(state, counts_plus.allocate(E + 1)) ||
        !bench::ok_or_skip(state, counts_plus.fill_bytes(0)))
      return;
  }
  auto work = [&]() -> Status {
    if constexpr (Cub) return cub_dispatch.run(b, counts_plus, g.s());
    else return ds::moe::dispatch(b.ids.data(), T, K, E, b.view(), ws.data(), ws_bytes, g.s());
  };
  if constexpr (Cub) {  // same outputs as moe::dispatch, or no timing
    std::vector<int> slots, offsets;
    if (!bench::ok_or_skip(state, b.sorted_slot.fill_bytes(0xFF)) || !bench::ok_or_skip(state, work()) ||
        !bench::ok_or_skip(state, b.download(slots, offsets)))
      return;
    if (slots != want_slots || offsets != want_offsets) {
      state.SkipWithError("the CUB dispatch disagrees with moe::dispatch");
      return;
    }
  }
  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, g.timer, g.l2, g.s(), work)) return;
  bench::set_roofline_counters(state, dispatch_bytes(static_cast<double>(n), E), 0.0, bench::kH200HbmBytesPerSecond, 0.0,
                               g.timer.total_seconds());
  state.SetLabel(std::string(Cub ? "cub radix sort + histogram + scan" : "deepshock counting sort") + ", E=" + std::to_string(E) +
                 " k=" + std::to_string(K));
}

void register_all() {
  auto args = [](benchmark::internal::Benchmark* bm) {
    bm->ArgName("T")->UseManualTime()->Unit(benchmark::kMicrosecond);
    for (const int t : {1, 16, 128, 1024, 4096, 16384}) bm->Arg(t);
  };
  args(benchmark::RegisterBenchmark("dispatch/deepshock/64x6", BM_dispatch<64, 6, false>));
  args(benchmark::RegisterBenchmark("dispatch/cub_radix_sort/64x6", BM_dispatch<64, 6, true>));
  args(benchmark::RegisterBenchmark("dispatch/deepshock/256x8", BM_dispatch<256, 8, false>));
  args(benchmark::RegisterBenchmark("dispatch/cub_radix_sort/256x8", BM_dispatch<256, 8, true>));
}
}  // namespace

int main(int argc, char** argv) {
  register_all();
  return deepshock::bench::bench_main(argc, argv, /*needs_device=*/true, /*default_min_time=*/"0.05");
}
