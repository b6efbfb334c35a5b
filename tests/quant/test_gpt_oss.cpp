// gpt-oss end to end on the host: the checkpoint's tensors (tests/quant/golden/gpt_oss_mlp.txt,
// written by tools/fp4_golden.py with transformers' own GptOssMLP) go through
// models::import_gpt_oss and run in the host executor with the model's gate, expert type and
// biases; routing and output must match what transformers computed. The device kernels run the
// same composition in tests/moe/layer_tests.inc (the gpt-oss full-run section).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "deepshock/models/gpt_oss.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "deepshock/moe/reference_layer.hpp"
#include "golden_file.hpp"
#include "status_checks.hpp"
#include "test_support.hpp"

namespace ds = deepshock;
namespace moe = deepshock::moe;
namespace models = deepshock::models;

namespace {
std::vector<ds::bf16> bf16s(const std::vector<std::uint16_t>& bits) {
  std::vector<ds::bf16> v(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) v[i] = ds::bf16::from_bits(bits[i]);
  return v;
}
}  // namespace

TEST_CASE("gpt-oss: the imported checkpoint tensors reproduce transformers' GptOssMLP (routing, biases, clamped SwiGLU)",
          "[quant][fp4][gpt-oss]") {
  const golden::File g = golden::load("gpt_oss_mlp.txt");
  const long long E = g.meta_int("experts"), H = g.meta_int("hidden"), I = g.meta_int("intermediate");
  const int K = static_cast<int>(g.meta_int("topk")), T = static_cast<int>(g.meta_int("tokens"));
  REQUIRE(E == 8);
  REQUIRE(K == 4);
  using Gate = ds::gate::TopKSoftmax<ds::Experts<8>, ds::TopK<4>>;  // GptOss20b's policy at 8 experts
  using Expert = models::GptOss20b::Expert;
  const auto gu_blocks = g.get<std::uint8_t>("gate_up_blocks"), gu_scales = g.get<std::uint8_t>("gate_up_scales");
  const auto dn_blocks = g.get<std::uint8_t>("down_blocks"), dn_scales = g.get<std::uint8_t>("down_scales");
  const auto gu_bias = bf16s(g.get<std::uint16_t>("gate_up_bias")), dn_bias = bf16s(g.get<std::uint16_t>("down_bias"));
  const auto router_w = bf16s(g.get<std::uint16_t>("router_weight")), router_b = bf16s(g.get<std::uint16_t>("router_bias"));
  const auto x = bf16s(g.get<std::uint16_t>("x"));
  const auto want_ids = g.get<std::uint8_t>("ids");
  const std::vector<float> want_w = g.floats("weights"), want_y = g.floats("y");

  models::GptOssTensors in;
  in.gate_up_blocks = gu_blocks.data(), in.gate_up_scales = gu_scales.data(), in.gate_up_bias = gu_bias.data();
  in.down_blocks = dn_blocks.data(), in.down_scales = dn_scales.data(), in.down_bias = dn_bias.data();
  in.router_bias = router_b.data();
  in.experts = E, in.hidden = H, in.intermediate = I;
  models::GptOssExperts m;
  DS_REQUIRE_OK(models::import_gpt_oss(in, m));
  // De-interleaved: gate row i of expert e is the checkpoint's row 2i, up row i its row 2i + 1.
  for (long long e = 0; e < E; ++e)
    for (long long i = 0; i < I; ++i)
      for (long long b = 0; b < H / 2; ++b) {
        REQUIRE(m.w1[std::size_t((e * I + i) * (H / 2) + b)] == gu_blocks[std::size_t((e * 2 * I + 2 * i) * (H / 2) + b)]);
        REQUIRE(m.w3[std::size_t((e * I + i) * (H / 2) + b)] == gu_blocks[std::size_t((e * 2 * I + 2 * i + 1) * (H / 2) + b)]);
      }

  const moe::LayerDims dims = models::dims<models::GptOss20b>(T);
  const moe::LayerDims small{static_cast<int>(H), static_cast<int>(I), 0, T};
  CHECK(dims.hidden == 2880);  // the preset's own shape; the golden block is a scaled-down one
  const moe::LayerWeights<ds::bf16, Expert> w = models::host_weights<ds::bf16>(m, router_w.data());
  std::vector<ds::bf16> y(std::size_t(T) * H, ds::bf16::from_bits(0x7FC0));
  std::vector<int> ids(std::size_t(T) * K, -7);
  std::vector<float> wts(ids.size(), NAN);
  moe::LayerOutputs<ds::bf16> out;
  out.y = y.data();
  out.topk_ids = ids.data();
  out.topk_weights = wts.data();
  DS_REQUIRE_OK(moe::host::run_layer<Gate>(small, models::params<models::GptOss20b>(), models::options<models::GptOss20b>(), w,
                                           moe::LayerInputs<ds::bf16>{x.data(), T, 0, nullptr}, out));
  // The routing: transformers' top-4 (rank order) and its softmax over them.
  for (std::size_t a = 0; a < ids.size(); ++a) {
    INFO("assignment " << a);
    CHECK(ids[a] == int(want_ids[a]));
    CHECK(std::fabs(wts[a] - want_w[a]) <= 1e-6f);
  }
  // The output: the double reference on the imported weights agrees with transformers' fp32
  // block to fp32 rounding (relative to y's scale), and the host executor (bf16 h and y) to bf16's.
  const std::vector<double> ref =
      moe::reference::layer_from_routing(small, 8, K, w, moe::LayerInputs<ds::bf16>{x.data(), T, 0, nullptr}, ids.data(), wts.data());
  double sq = 0.0;
  for (float v : want_y) sq += double(v) * v;
  const double rms = std::sqrt(sq / double(want_y.size()));
  REQUIRE(rms > 1.0);
  double worst_ref = 0.0, worst_host = 0.0;
  for (std::size_t i = 0; i < want_y.size(); ++i) {
    worst_ref = std::max(worst_ref, std::fabs(ref[i] - want_y[i]) / rms);
    worst_host = std::max(worst_host, std::fabs(double(y[i].to_float()) - want_y[i]) / rms);
  }
  INFO("y RMS " << rms << "; worst |error| / RMS: reference " << worst_ref << ", host executor " << worst_host);
  CHECK(worst_ref < 1e-5);
  CHECK(worst_host < 2e-2);

  // Rejections name the checkpoint tensor.
  std::vector<std::uint8_t> bad = gu_scales;
  bad[5] = 0xFF;  // E8M0 NaN
  models::GptOssTensors nan_scale = in;
  nan_scale.gate_up_scales = bad.data();
  ds_test::check_rejects(models::import_gpt_oss(nan_scale, m), "gate_up_proj_scales");
  models::GptOssTensors no_down = in;
  no_down.down_blocks = nullptr;
  ds_test::check_rejects(models::import_gpt_oss(no_down, m), "down_proj_blocks");
  models::GptOssTensors partial = in;
  partial.intermediate = 48;
  ds_test::check_rejects(models::import_gpt_oss(partial, m), "intermediate");
}
