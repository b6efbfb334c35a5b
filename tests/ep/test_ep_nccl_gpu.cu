// ep::NcclTransport under ep::DeviceEp (GPU only): one communicator per GPU from ncclCommInitAll,
// a thread per rank, every rank count from 1 to the GPUs present (at most 8); each rank's y must
// be bitwise the single-rank layer's. With one GPU it runs the 1-rank communicator (the rank's
// own part as a device copy, the NCCL group with nothing in it). Exits 77 without a GPU.
#include "backend_gpu.hpp"

#include <thread>

#include "deepshock/ep/nccl.hpp"
#include "ep_device_problem.hpp"

using namespace ep_test;

TEST_CASE("DeviceEp over NCCL: 1..min(GPUs, 8) ranks, bitwise the single-rank layer", "[ep][gpu]") {
  int gpus = 0;
  DS_REQUIRE_OK(rt::device_count(gpus));
  REQUIRE(gpus >= 1);
  auto rng = ds_test::make_rng(0x9CC1);
  const Weights h(rng);
  constexpr int kT = 45;
  std::vector<T> x;
  for (const float f : ds_test::uniform(std::size_t(kT) * kDims.hidden, rng)) x.push_back(T(f));
  const std::vector<T> ref = single_rank(h, x, kT);
  for (int R = 1; R <= std::min(gpus, 8); ++R) {
    INFO("ranks " << R);
    std::vector<ncclComm_t> comms(static_cast<std::size_t>(R));
    DS_REQUIRE_OK(ep::from_nccl(ncclCommInitAll(comms.data(), R, nullptr), "ncclCommInitAll"));
    const ep::Placement pl = ep::Placement::contiguous(kE, R);
    std::vector<T> y(x.size());
    std::vector<ds::Status> status(static_cast<std::size_t>(R));
    std::vector<std::thread> threads;
    for (int r = 0; r < R; ++r)
      threads.emplace_back([&, r] {
        ds::Status st = ep::from_nccl(cudaSetDevice(r) == cudaSuccess ? ncclSuccess : ncclUnhandledCudaError, "cudaSetDevice");
        ep::NcclTransport tr(comms[static_cast<std::size_t>(r)]);
        const int t0 = kT * r / R, n = kT * (r + 1) / R - t0;
        DeviceWeights dw(h, pl.held(r));
        const std::vector<T> mine(x.begin() + std::ptrdiff_t(t0) * kDims.hidden, x.begin() + std::ptrdiff_t(t0 + n) * kDims.hidden);
        auto dx = upload_nonnull(mine);
        auto dy = ds_test::poisoned_nonnull<T>(mine.size());
        rt::Stream stream;
        if (st.ok()) st.assign(stream.create());
        ep::DeviceEp<L, ep::NcclTransport> rank(tr, pl, kDims);
        if (st.ok()) st.assign(rank.status());
        moe::LayerOutputs<T> out;
        out.y = dy.data();
        if (st.ok()) st.assign(rank.run(moe::LayerInputs<T>{dx.data(), n, 0, nullptr}, dw.w, out, stream.get()));
        if (st.ok()) st.assign(stream.synchronize());
        if (st.ok() && n > 0) {
          const std::vector<T> got = download(dy, mine.size());
          std::copy(got.begin(), got.end(), y.begin() + std::ptrdiff_t(t0) * kDims.hidden);
        }
        status[static_cast<std::size_t>(r)].assign(st);
      });
    for (auto& t : threads) t.join();
    for (ncclComm_t c : comms) (void)ncclCommDestroy(c);
    for (const ds::Status& st : status) DS_REQUIRE_OK(st);
    CHECK(same_bits(y, ref));
  }
}
