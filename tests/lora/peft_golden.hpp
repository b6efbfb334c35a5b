// tests/lora/peft_golden.hpp — the PEFT golden files (tools/peft_lora_golden.py, committed under
// tests/lora/golden) and a helper that rewrites a safetensors header, for the import and the
// untrusted-input tests.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "deepshock/lora/safetensors.hpp"

#ifndef DEEPSHOCK_TEST_DATA_DIR
#error "DEEPSHOCK_TEST_DATA_DIR must name the folder holding the PEFT golden files (tests/lora/golden)"
#endif

namespace peft_golden {

inline std::vector<unsigned char> bytes(const std::string& file) {
  std::vector<unsigned char> b;
  const auto st = deepshock::lora::read_file(std::string(DEEPSHOCK_TEST_DATA_DIR) + "/" + file, b);
  INFO(st.to_string());
  REQUIRE(st.ok());
  return b;
}

inline std::string text(const std::string& file) {
  const auto b = bytes(file);
  return std::string(b.begin(), b.end());
}

/// A safetensors file from a header text and a byte buffer.
inline std::vector<unsigned char> assemble(const std::string& header, const unsigned char* buffer, std::size_t buffer_size) {
  std::vector<unsigned char> out;
  out.reserve(8 + header.size() + buffer_size);  // (also keeps g++ 12's -Warray-bounds quiet on the inserts)
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), buffer, buffer + buffer_size);
  return out;
}

/// `file` (a valid safetensors file) with its header JSON changed by `edit`; the byte buffer is kept.
inline std::vector<unsigned char> rewrite(const std::vector<unsigned char>& file,
                                          const std::function<void(nlohmann::ordered_json&)>& edit) {
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(file[i]) << (8 * i);
  auto header = nlohmann::ordered_json::parse(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  edit(header);
  return assemble(header.dump(), file.data() + 8 + n, file.size() - 8 - n);
}

}  // namespace peft_golden
