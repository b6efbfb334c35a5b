// libFuzzer target over the untrusted-input paths of the PEFT import: the input is parsed as a
// safetensors file (and, when it parses, imported as a 4-expert block's adapter with a fixed
// config) and as the text of an adapter_config.json. Built only with clang and
// -DDEEPSHOCK_BUILD_FUZZERS=ON; seed it with tests/lora/golden/*/*, e.g.
//   ./fuzz_safetensors -max_total_time=60 corpus/ tests/lora/golden/linear tests/lora/golden/fused
// The bounded, always-run version is tests/lora/test_safetensors_fuzz.cpp.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "deepshock/lora/peft_import.hpp"

namespace lora = deepshock::lora;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  lora::SafeTensors st;
  if (lora::SafeTensors::parse(data, size, st).ok()) {
    std::vector<double> v;
    for (const auto& t : st.tensors()) (void)st.read_f64(t, v);
    lora::PeftConfig cfg;
    cfg.r = 4;
    cfg.lora_alpha = 8;
    cfg.rank_pattern = {{"w2", 2}, {"shared_expert.down_proj", 8}};
    cfg.target_parameters = {"experts.gate_up_proj", "experts.down_proj"};
    lora::PeftExpertNames names;
    names.block = "moe.";
    lora::HostAdapter<float> ad;
    (void)lora::import_peft_experts(cfg, st, names, 4, 32, 16, 24, ad);
  }
  lora::PeftConfig cfg;
  if (lora::PeftConfig::parse(std::string_view(reinterpret_cast<const char*>(data), size), cfg).ok()) {
    int r = 0;
    (void)cfg.rank_for("moe.experts.0.w1", r);
  }
  return 0;
}
