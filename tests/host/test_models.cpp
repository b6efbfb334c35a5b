// The library's model presets (models/presets.hpp): their routing defaults agree with the run-time
// configurations of gate::kDynamicConfigs, and their shapes pass the layer's size checks for the
// expert type their checkpoints ship.
#include <catch2/catch.hpp>

#include <cstring>

#include "deepshock/gate/dispatch.hpp"
#include "deepshock/models/presets.hpp"
#include "deepshock/moe/expert.hpp"

namespace ds = deepshock;
namespace models = deepshock::models;

namespace {
template <class M>
void check_preset() {
  using Gate = typename M::Gate;
  INFO(M::kName);
  // The layer accepts the model's own sizes for its checkpoint's expert format (bf16 activations).
  CHECK((ds::moe::detail::check_layer_dims<ds::bf16, typename M::Expert::codec>(models::dims<M>(1)).ok()));
  CHECK(models::dims<M>(7).max_tokens == 7);
  const ds::gate::PolicyParams p = models::params<M>();
  CHECK(p.renormalize == M::kRenormalize);
  CHECK(p.renorm_eps == ds::gate::default_params<Gate>().renorm_eps);
  CHECK(models::options<M>().routed_scaling_factor == M::kScale);
  // The run-time configuration of the same model, where one is compiled, carries the same defaults.
  int rows = 0;
  for (const ds::gate::DynamicConfig& c : ds::gate::kDynamicConfigs) {
    if (std::strcmp(c.model, M::kName) != 0) continue;
    ++rows;
    CHECK(c.experts == Gate::kExperts);
    CHECK(c.topk == Gate::kTopK);
    CHECK(c.groups == Gate::kGroups);
    CHECK(c.renormalize == M::kRenormalize);
    CHECK(c.routed_scaling_factor == M::kScale);
    CHECK(ds::gate::config_options(c).routed_scaling_factor == models::options<M>().routed_scaling_factor);
    CHECK(ds::gate::config_params(c).renorm_eps == p.renorm_eps);
  }
  CHECK(rows <= 1);
}
}  // namespace

TEST_CASE("model presets carry their models' routing defaults and pass the layer's size checks", "[host][models]") {
  check_preset<models::Mixtral8x7B>();
  check_preset<models::DeepSeekV2Lite>();
  check_preset<models::DeepSeekV2>();
  check_preset<models::DeepSeekV3>();
  check_preset<models::Qwen3_30B_A3B>();
  check_preset<models::Qwen15MoE>();
  check_preset<models::GptOss20b>();
  check_preset<models::GptOss120b>();
  // The values a caller most easily forgets.
  CHECK(models::options<models::DeepSeekV3>().routed_scaling_factor == 2.5f);
  CHECK(models::options<models::DeepSeekV2>().routed_scaling_factor == 16.0f);
  CHECK_FALSE(models::params<models::DeepSeekV2Lite>().renormalize);
  CHECK(models::params<models::DeepSeekV3>().renorm_eps == 1e-20f);
  CHECK(models::expert_biases<models::GptOss20b>());
  CHECK_FALSE(models::expert_biases<models::DeepSeekV3>());
  CHECK(models::sigmoid_shared_gate<models::Qwen15MoE>());
  CHECK(models::GptOss120b::Gate::kExperts == 128);
}
