// The tests of lora_tests.inc, run on the gpu backend, plus CUDA graph capture and replay of a
// LoRA layer (GPU only: the simulator has no graphs).
#include "backend_gpu.hpp"
#include "lora_tests.inc"

#include <cuda_runtime.h>

TEST_CASE("LoRA layer: a captured CUDA graph replays bitwise with new activations and new per-token adapter ids" DS_BACKEND_TAG,
          "[lora][layer][graph]") {
  // The adapter ids are read on the device: a step with other adapters per token is a replay
  // with new ids in place, no host synchronisation and no new capture.
  auto rng = ds_test::make_rng(1803);
  using X = moe::Expert<ds::quant::None, lora::LoRA<16>>;
  using L = moe::Layer<gate_mixtral, X, ds::bf16>;
  const int T = 24;
  Problem<ds::bf16, X> P({64, 48, 32, T}, 8, T, rng);
  AdapterSet<ds::bf16> A(P.dims, 8, {16, 3, 8}, {kAll, lora::target::routed, kAll}, rng);
  L layer(P.dims);
  DS_REQUIRE_OK(layer.status());
  auto w = P.weights(true);
  A.set(w, true);
  auto aids_d = upload_nonnull(random_adapter_ids(T, A.count(), rng));
  auto in = P.inputs(true);
  in.adapter_ids = aids_d.data();
  auto ws = poisoned_nonnull<unsigned char>(layer.workspace_bytes());
  rt::DeviceBuffer<ds::bf16> y, y_direct;
  REQUIRE(y.allocate(std::size_t(T) * 64).ok());
  REQUIRE(y_direct.allocate(std::size_t(T) * 64).ok());
  rt::Stream stream;
  DS_REQUIRE_OK(stream.create());
  moe::LayerOutputs<ds::bf16> out;
  out.y = y.data();
  DS_REQUIRE_OK(layer.run(in, w, out, ws.data(), layer.workspace_bytes(), stream.get()));  // warm-up outside the capture
  DS_REQUIRE_OK(stream.synchronize());
  rt::Graph graph;  // the library's capture (stream capture, instantiate)
  DS_REQUIRE_OK(graph.capture(stream.get(), [&] { return layer.run(in, w, out, ws.data(), layer.workspace_bytes(), stream.get()); }));
  std::vector<ds::bf16> previous;
  for (int round = 0; round < 3; ++round) {
    const auto fresh_x = random_buf<ds::bf16>(std::size_t(T) * 64, 1.0f, rng);
    if (round != 2)  // round 2: the same x, new adapter ids only
      REQUIRE(cudaMemcpy(const_cast<ds::bf16*>(P.x.d()), fresh_x.d(), sizeof(ds::bf16) * T * 64, cudaMemcpyDeviceToDevice) == cudaSuccess);
    const std::vector<int> ids = random_adapter_ids(T, A.count(), rng);
    REQUIRE(cudaMemcpy(aids_d.data(), ids.data(), sizeof(int) * T, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(y.fill_bytes(0xFF).ok());
    REQUIRE(ws.fill_bytes(0xFF).ok());
    REQUIRE(rt::device_synchronize().ok());
    DS_REQUIRE_OK(graph.launch(stream.get()));
    DS_REQUIRE_OK(stream.synchronize());
    const auto replayed = download(y, std::size_t(T) * 64);
    moe::LayerOutputs<ds::bf16> direct = out;
    direct.y = y_direct.data();
    DS_REQUIRE_OK(layer.run(in, w, direct, ws.data(), layer.workspace_bytes(), stream.get()));
    DS_REQUIRE_OK(stream.synchronize());
    const auto want = download(y_direct, std::size_t(T) * 64);
    CHECK(std::memcmp(replayed.data(), want.data(), want.size() * sizeof(ds::bf16)) == 0);
    if (round == 2) CHECK(std::memcmp(replayed.data(), previous.data(), want.size() * sizeof(ds::bf16)) != 0);  // the ids took effect
    previous = replayed;
  }
}
