// tests/quant/golden_file.hpp — reader of the golden files that tools/quant_golden.py and
// tools/fp4_golden.py write (the packages' own outputs, committed under tests/quant/golden).
//   meta <key> <value>
//   tensor <name> <dtype> <d0> <d1>   then d0 * d1 values: i32 decimal; u4 one hex digit per value
//                                     (one run per row); u8 / f16 / bf16 / f32 raw bits in hex
//   end
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifndef DEEPSHOCK_TEST_DATA_DIR
#error "DEEPSHOCK_TEST_DATA_DIR must name the folder holding the quant golden files (tests/quant/golden)"
#endif

namespace golden {

struct Tensor {
  std::string dtype;
  long long d0 = 0, d1 = 0;
  std::vector<long long> v;
};

struct File {
  std::string file;
  std::map<std::string, std::string> meta;
  std::map<std::string, Tensor> tensors;

  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  const Tensor& at(const std::string& name) const {
    INFO(file << ": tensor " << name);
    REQUIRE(has(name));
    return tensors.at(name);
  }
  /// The values as V (i32 as int32; u8 / f16 / bf16 bits as unsigned integers).
  template <class V>
  std::vector<V> get(const std::string& name) const {
    const Tensor& t = at(name);
    return std::vector<V>(t.v.begin(), t.v.end());
  }
  /// An f32 tensor's values.
  std::vector<float> floats(const std::string& name) const {
    const Tensor& t = at(name);
    REQUIRE(t.dtype == "f32");
    std::vector<float> out(t.v.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      const auto bits = static_cast<std::uint32_t>(t.v[i]);
      std::memcpy(&out[i], &bits, sizeof bits);
    }
    return out;
  }
  long long meta_int(const std::string& key) const { return std::stoll(meta.at(key)); }
};

inline File load(const std::string& file) {
  std::ifstream in(std::string(DEEPSHOCK_TEST_DATA_DIR) + "/" + file);
  INFO(file);
  REQUIRE(in.good());
  std::string text, line;
  while (std::getline(in, line))
    if (line.empty() || line[0] != '#') text += line + '\n';
  std::istringstream ss(text);
  File g{file, {}, {}};
  bool ended = false;
  for (std::string word; ss >> word;) {
    if (word == "end") {
      ended = true;
      break;
    }
    if (word == "meta") {
      std::string key, value;
      ss >> key >> value;
      g.meta[key] = value;
      continue;
    }
    REQUIRE(word == "tensor");
    std::string name;
    Tensor t;
    ss >> name >> t.dtype >> t.d0 >> t.d1;
    const auto count = static_cast<std::size_t>(t.d0 * t.d1);
    while (t.v.size() < count && ss >> word) {
      if (t.dtype == "u4") {
        for (char ch : word) t.v.push_back(std::stoll(std::string(1, ch), nullptr, 16));
      } else {
        t.v.push_back(std::stoll(word, nullptr, t.dtype == "i32" ? 10 : 16));
      }
    }
    INFO("tensor " << name);
    REQUIRE(t.v.size() == count);
    g.tensors[name] = std::move(t);
  }
  REQUIRE(ended);
  return g;
}

}  // namespace golden
