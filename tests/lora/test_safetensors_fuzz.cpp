// Untrusted input: bounded random mutations of the golden PEFT files (tests/lora/golden) through
// SafeTensors::parse, PeftConfig::parse and import_peft_experts. Every mutated input must give a
// Status, ok or not, and never crash or read out of bounds (CI runs this binary under ASan+UBSan,
// which turns a stray read into a failure). The mutations are drawn from Catch's seed
// (--rng-seed), so a failure is reproducible. tests/lora/fuzz_safetensors.cpp is the unbounded
// libFuzzer version (DEEPSHOCK_BUILD_FUZZERS, clang only).
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "deepshock/lora/peft_import.hpp"
#include "peft_golden.hpp"

namespace lora = deepshock::lora;
using json = nlohmann::ordered_json;

namespace {

using Bytes = std::vector<unsigned char>;

std::uint64_t header_length(const Bytes& b) {
  std::uint64_t n = 0;
  for (int i = 0; i < 8 && i < static_cast<int>(b.size()); ++i) n |= std::uint64_t(b[i]) << (8 * i);
  return n;
}

void set_header_length(Bytes& b, std::uint64_t n) {
  for (int i = 0; i < 8 && i < static_cast<int>(b.size()); ++i) b[i] = static_cast<unsigned char>(n >> (8 * i));
}

/// A JSON value of a random kind: the values a hostile header or config might hold.
json random_value(std::mt19937_64& rng) {
  switch (rng() % 10) {
    case 0: return nullptr;
    case 1: return -static_cast<std::int64_t>(rng() % 1000) - 1;
    case 2: return ~std::uint64_t(0) - rng() % 16;
    case 3: return std::uint64_t(1) << (rng() % 64);
    case 4: return 0.5 + static_cast<double>(rng() % 100);
    case 5: return "F32";
    case 6: return json::array({rng() % 64, rng() % 64});
    case 7: return json::array({std::uint64_t(1) << 40, std::uint64_t(1) << 40, std::uint64_t(1) << 40});
    case 8: return json::object({{"k", 1}});
    default: return static_cast<std::uint64_t>(rng() % 100000);
  }
}

/// Structured damage to one tensor entry of a valid file: offsets overlapping, overflowing or past
/// the end, huge or negative shapes, unknown dtypes, missing fields, odd names.
Bytes mutate_entry(const Bytes& good, std::mt19937_64& rng) {
  return peft_golden::rewrite(good, [&](json& h) {
    std::vector<std::string> names;
    for (const auto& [k, v] : h.items())
      if (k != "__metadata__") names.push_back(k);
    const std::string& name = names[rng() % names.size()];
    json& e = h[name];
    switch (rng() % 9) {
      case 0: e["data_offsets"][rng() % 2] = random_value(rng); break;
      case 1: {  // overlap another tensor
        const json& o = h[names[rng() % names.size()]]["data_offsets"];
        e["data_offsets"] = {o[0].get<std::uint64_t>() + rng() % 8,
                             o[0].get<std::uint64_t>() +
                                 (e["data_offsets"][1].get<std::uint64_t>() - e["data_offsets"][0].get<std::uint64_t>())};
        break;
      }
      case 2: e["shape"] = random_value(rng); break;
      case 3: e["shape"][rng() % 2] = random_value(rng); break;
      case 4: e["dtype"] = json::array({"F16", "BF16", "I32", "U8", "F64", "F4", "f32", ""})[rng() % 8]; break;
      case 5: e.erase(std::string(json::array({"dtype", "shape", "data_offsets"})[rng() % 3])); break;
      case 6: h[name] = random_value(rng); break;
      case 7: {  // rename (with an odd suffix: another expert index, a dropped letter)
        json v = e;
        std::string n2 = name;
        n2[rng() % n2.size()] = static_cast<char>('0' + rng() % 10);
        h.erase(name);
        h[n2] = v;
        break;
      }
      default: h["__metadata__"] = random_value(rng); break;
    }
  });
}

Bytes mutate_bytes(const Bytes& good, std::mt19937_64& rng) {
  Bytes b = good;
  const std::uint64_t n = header_length(good);
  switch (rng() % 8) {
    case 0: b.resize(rng() % (b.size() + 1)); break;  // truncate
    case 1:                                           // flip anywhere
      for (int i = 0, k = 1 + static_cast<int>(rng() % 8); i < k; ++i) b[rng() % b.size()] ^= static_cast<unsigned char>(1u << (rng() % 8));
      break;
    case 2:  // flip inside the header (the JSON)
      for (int i = 0, k = 1 + static_cast<int>(rng() % 4); i < k; ++i) b[8 + rng() % n] = static_cast<unsigned char>(rng());
      break;
    case 3: {  // header length: huge, past the end, just past, off by one, the limit
      const std::uint64_t choices[] = {~std::uint64_t(0), std::uint64_t(1) << 63, b.size(), b.size() - 7, n + 1, n - 1, 100000001, rng()};
      set_header_length(b, choices[rng() % 8]);
      break;
    }
    case 4: {  // invalid UTF-8 inside a name (keeping the length field right)
      const std::size_t at = 8 + 2 + rng() % (n - 4);
      const unsigned char bad[][2] = {{0xC3, 0x28}, {0xFF, 0xFE}, {0xED, 0xA0}, {0xC0, 0x80}, {0xF8, 0x88}};
      const auto& s = bad[rng() % 5];
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), s, s + 2);
      set_header_length(b, n + 2);
      break;
    }
    case 5: {  // a header that is not JSON at all
      std::string h(rng() % 64, ' ');
      for (char& c : h) c = static_cast<char>(rng());
      b = peft_golden::assemble(h, good.data() + 8 + n, good.size() - 8 - n);
      break;
    }
    case 6: {  // duplicate or drop a chunk of the buffer
      const std::size_t at = 8 + n + rng() % (good.size() - 8 - n);
      if (rng() % 2)
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(std::min(b.size(), at + rng() % 64)));
      else
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), good.begin() + 8, good.begin() + 8 + static_cast<std::ptrdiff_t>(rng() % 64));
      break;
    }
    default: b = mutate_entry(good, rng); break;
  }
  return b;
}

std::string mutate_config(const std::string& good, std::mt19937_64& rng) {
  std::string s = good;
  switch (rng() % 5) {
    case 0: s.resize(rng() % (s.size() + 1)); return s;
    case 1:
      for (int i = 0, k = 1 + static_cast<int>(rng() % 4); i < k; ++i) s[rng() % s.size()] = static_cast<char>(rng());
      return s;
    default: {
      json j = json::parse(good);
      const char* fields[] = {
          "r", "lora_alpha", "use_rslora", "target_modules", "target_parameters", "rank_pattern", "alpha_pattern", "peft_type"};
      const char* field = fields[rng() % 8];
      if (rng() % 2 == 0 || (std::string(field) != "rank_pattern" && std::string(field) != "alpha_pattern")) {
        j[field] = random_value(rng);
      } else {  // a pattern key: literal, regex, broken regex, one that backtracks, a long one
        const std::string keys[] = {"w2",      "experts\\.[0-9]+\\.w1",     "(w1|w3)", "w1(", "[", "(a+)+$",
                                    "(.*)*w2", std::string(300, 'a') + "(", "",        "\\"};
        j[field][keys[rng() % 10]] = rng() % 3 == 0 ? random_value(rng) : json(1 + rng() % 8);
      }
      return j.dump();
    }
  }
}

}  // namespace

TEST_CASE("safetensors + peft import: random mutations of the golden files give a Status, never a crash", "[lora][fuzz]") {
  std::mt19937_64 rng(Catch::rngSeed());
  const Bytes files[] = {peft_golden::bytes("linear/adapter_model.safetensors"), peft_golden::bytes("fused/adapter_model.safetensors"),
                         peft_golden::bytes("linear/io.safetensors")};
  const std::string configs[] = {peft_golden::text("linear/adapter_config.json"), peft_golden::text("fused/adapter_config.json")};
  lora::PeftConfig good_config[2];
  for (int i = 0; i < 2; ++i) REQUIRE(lora::PeftConfig::parse(configs[i], good_config[i]).ok());
  lora::PeftExpertNames names;
  names.block = "moe.";

  int parsed = 0, rejected = 0, imported = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    const int which = static_cast<int>(rng() % 3);
    const Bytes b = mutate_bytes(files[which], rng);
    lora::SafeTensors st;
    if (lora::SafeTensors::parse(b.data(), b.size(), st).ok()) {
      ++parsed;
      // Read every tensor the way a consumer would.
      std::vector<double> v;
      for (const auto& t : st.tensors()) (void)st.read_f64(t, v);
      lora::HostAdapter<float> ad;
      if (lora::import_peft_experts(good_config[which % 2], st, names, 4, 32, 16, 24, ad).ok()) ++imported;
    } else {
      ++rejected;
    }
  }
  // Mutated configs, each then used on its golden adapter.
  lora::SafeTensors adapters[2];
  for (int i = 0; i < 2; ++i) REQUIRE(lora::SafeTensors::parse(files[i].data(), files[i].size(), adapters[i]).ok());
  int config_ok = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    const int which = static_cast<int>(rng() % 2);
    lora::PeftConfig cfg;
    if (!lora::PeftConfig::parse(mutate_config(configs[which], rng), cfg).ok()) continue;
    ++config_ok;
    lora::HostAdapter<float> ad;
    (void)lora::import_peft_experts(cfg, adapters[which], names, 4, 32, 16, 24, ad);
  }
  // The mutations must exercise both outcomes, or they test nothing.
  INFO("parsed " << parsed << ", rejected " << rejected << ", imported " << imported << ", configs accepted " << config_ok);
  CHECK(parsed > 100);
  CHECK(rejected > 1000);
  CHECK(imported > 10);
  CHECK(config_ok > 100);
}
