// The tests of layer_tests.inc, run on the gpu backend, plus CUDA graph capture and replay of a
// whole layer (GPU only: the simulator has no graphs).
#include "backend_gpu.hpp"
#include "layer_tests.inc"

#include <cuda_runtime.h>

namespace {
/// Captures one Layer::run in a CUDA graph, then twice: new activations in place, replay, and a
/// direct run that must agree bitwise. check_refusal: also run_routed under capture.
template <class L>
void graph_replays_bitwise(const moe::LayerDims& dims, int T, std::mt19937_64& rng, bool check_refusal) {
  Problem<ds::bf16, SwiGLU> P(dims, L::kExperts, T, rng);
  L layer(dims);
  DS_REQUIRE_OK(layer.status());
  auto ws = poisoned_nonnull<unsigned char>(layer.workspace_bytes());
  rt::DeviceBuffer<ds::bf16> y, y_direct;
  REQUIRE(y.allocate(std::size_t(T) * dims.hidden).ok());
  REQUIRE(y_direct.allocate(std::size_t(T) * dims.hidden).ok());
  rt::Stream stream;
  DS_REQUIRE_OK(stream.create());
  moe::LayerOutputs<ds::bf16> out;
  out.y = y.data();
  const auto in = P.inputs(true);
  const auto w = P.weights(true);
  INFO(layer.kernel_plan(in, w));

  // A warm-up run outside the capture (module loading, shared-memory attributes: see layer.hpp),
  // then capture one run (no host synchronisation or allocation may happen inside).
  DS_REQUIRE_OK(layer.run(in, w, out, ws.data(), layer.workspace_bytes(), stream.get()));
  DS_REQUIRE_OK(stream.synchronize());
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  const ds::Status captured = layer.run(in, w, out, ws.data(), layer.workspace_bytes(), stream.get());
  REQUIRE(cudaStreamEndCapture(stream.get(), &graph) == cudaSuccess);
  DS_REQUIRE_OK(captured);
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);

  for (int round = 0; round < 2; ++round) {
    // New activations in place (the graph holds the pointers), then replay and a direct run.
    const auto fresh = random_buf<ds::bf16>(std::size_t(T) * dims.hidden, 1.0f, rng);
    REQUIRE(cudaMemcpy(const_cast<ds::bf16*>(P.x.d()), fresh.d(), sizeof(ds::bf16) * T * dims.hidden, cudaMemcpyDeviceToDevice) ==
            cudaSuccess);
    REQUIRE(y.fill_bytes(0xFF).ok());
    REQUIRE(ws.fill_bytes(0xFF).ok());
    REQUIRE(rt::device_synchronize().ok());
    REQUIRE(cudaGraphLaunch(exec, stream.get()) == cudaSuccess);
    DS_REQUIRE_OK(stream.synchronize());
    const auto replayed = download(y, std::size_t(T) * dims.hidden);
    moe::LayerOutputs<ds::bf16> direct = out;
    direct.y = y_direct.data();
    DS_REQUIRE_OK(layer.run(in, w, direct, ws.data(), layer.workspace_bytes(), stream.get()));
    DS_REQUIRE_OK(stream.synchronize());
    const auto want = download(y_direct, std::size_t(T) * dims.hidden);
    CHECK(std::memcmp(replayed.data(), want.data(), want.size() * sizeof(ds::bf16)) == 0);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);

  if (check_refusal) {
    // run_routed's id check needs a host synchronisation: under capture it must refuse clearly
    // and leave the capture intact.
    rt::DeviceBuffer<int> ids;
    rt::DeviceBuffer<float> wts;
    REQUIRE(ids.allocate(std::size_t(T) * L::kTopK).ok());
    REQUIRE(wts.allocate(std::size_t(T) * L::kTopK).ok());
    REQUIRE(ids.fill_bytes(0).ok());
    REQUIRE(wts.fill_bytes(0).ok());
    REQUIRE(rt::device_synchronize().ok());
    cudaGraph_t g2 = nullptr;
    REQUIRE(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    const ds::Status refused = layer.run_routed(in, ids.data(), wts.data(), w, out, ws.data(), layer.workspace_bytes(), stream.get());
    const ds::Status unchecked =
        layer.run_routed(in, ids.data(), wts.data(), w, out, ws.data(), layer.workspace_bytes(), stream.get(), moe::RunOptions{false});
    REQUIRE(cudaStreamEndCapture(stream.get(), &g2) == cudaSuccess);
    check_rejects(refused, "options.check_ids");
    DS_REQUIRE_OK(unchecked);
    cudaGraphDestroy(g2);
  }
}
}  // namespace

TEST_CASE("MoE layer: captured CUDA graphs replay bitwise with new inputs (decode tiles; Hopper wgmma prefill tiles)" DS_BACKEND_TAG,
          "[moe][layer][graph]") {
  auto rng = ds_test::make_rng(415);
  // Decode tiles: 48 x 6 assignments <= 16 x 64.
  graph_replays_bitwise<moe::Layer<gate::SoftmaxTopK<ds::Experts<64>, ds::TopK<6>>, SwiGLU, ds::bf16>>({256, 128, 256, 64}, 48, rng, true);
  // Prefill tiles of HopperGemmTuning (wgmma in an sm_90a build): 100 x 2 assignments > 16 x 8.
  graph_replays_bitwise<moe::Layer<gate_mixtral, SwiGLU, ds::bf16, moe::OrderedCombine, moe::HopperGemmTuning>>({256, 192, 128, 128}, 100,
                                                                                                                rng, false);
}
