// deepshock/lora/safetensors.hpp — a validating reader of the safetensors format over bytes in
// memory: the file an adapter (or any checkpoint) arrives in. Host only; needs nlohmann/json
// (the Debian package nlohmann-json3-dev, CMake target nlohmann_json::nlohmann_json), which is why
// deepshock.hpp does not include it.
//
// Format: an 8-byte little-endian u64 N, N bytes of a UTF-8 JSON object, then the byte buffer.
// The object maps each tensor name to {"dtype": "F32" | ..., "shape": [d0, ...], "data_offsets":
// [begin, end]} (offsets relative to the buffer's start, little-endian data), plus an optional
// "__metadata__" object of string values.
//
// The files come from elsewhere (a hub, a user's upload): everything is validated before any
// tensor byte is read, and no input makes parse() read outside [data, data + size), throw, or
// allocate more than a small multiple of the header's size. Checks: N fits the file and is at most
// kMaxHeaderBytes; the header is valid UTF-8 JSON and an object; every entry has a known dtype, a
// shape of non-negative integers whose element count times the dtype's size does not overflow and
// equals end - begin, begin <= end <= the buffer's size; no two tensors overlap. Gaps between
// tensors are allowed (the format does not need them, but a gap cannot make a read go wrong).
// Every error names the tensor and the field.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"

namespace deepshock::lora {

/// Element types of the safetensors format (F4 / F6 packed types are not supported).
enum class StDtype { BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

/// Bytes of one element of `t`.
constexpr std::size_t dtype_size(StDtype t) {
  switch (t) {
    case StDtype::BOOL:
    case StDtype::U8:
    case StDtype::I8:
    case StDtype::F8_E4M3:
    case StDtype::F8_E5M2: return 1;
    case StDtype::I16:
    case StDtype::U16:
    case StDtype::F16:
    case StDtype::BF16: return 2;
    case StDtype::I32:
    case StDtype::U32:
    case StDtype::F32: return 4;
    case StDtype::I64:
    case StDtype::U64:
    case StDtype::F64: return 8;
  }
  return 0;
}

/// The format's name of `t` ("F32", ...).
constexpr const char* dtype_name(StDtype t) {
  constexpr const char* kNames[] = {"BOOL", "U8",  "I8",  "F8_E4M3", "F8_E5M2", "I16", "U16", "F16",
                                    "BF16", "I32", "U32", "F32",     "I64",     "U64", "F64"};
  return kNames[static_cast<int>(t)];
}

/// One tensor of a parsed file: where its bytes are (absolute offsets into the parsed buffer).
struct TensorInfo {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<std::uint64_t> shape;
  std::uint64_t elements = 0;  ///< product of shape (1 for a scalar, shape [])
  std::size_t begin = 0;       ///< first byte, from the start of the whole file buffer
  std::size_t end = 0;         ///< one past the last byte
};

/// A parsed safetensors file. It points into the caller's buffer, which must outlive it.
class SafeTensors {
 public:
  /// The largest header accepted (the format's reference implementation uses the same bound).
  static constexpr std::uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

  /// Parses and validates `size` bytes at `data` into `out` (cleared first; left empty on error).
  static Status parse(const unsigned char* data, std::size_t size, SafeTensors& out);

  /// The tensor called `name`, or null.
  const TensorInfo* find(std::string_view name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }
  /// Every tensor, in increasing order of its offset.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The "__metadata__" entries.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// The raw bytes of `t` (t.end - t.begin of them).
  const unsigned char* bytes(const TensorInfo& t) const { return data_ + t.begin; }

  /// t's values as float (F32, F16, BF16 exactly; F64 rounded to nearest); other dtypes are an
  /// error naming the tensor.
  Status read_f32(const TensorInfo& t, std::vector<float>& out) const { return read_floats(t, out); }
  /// t's values as double (F64, F32, F16, BF16: exact).
  Status read_f64(const TensorInfo& t, std::vector<double>& out) const { return read_floats(t, out); }
  /// t's values as int64 (I8, U8, I16, U16, I32, U32, I64; U64 values above INT64_MAX are an error).
  Status read_i64(const TensorInfo& t, std::vector<std::int64_t>& out) const;

 private:
  template <class V>
  Status read_floats(const TensorInfo& t, std::vector<V>& out) const;
  std::uint64_t load_le(std::size_t at, std::size_t bytes) const {
    std::uint64_t v = 0;  // byte by byte: the data has no alignment and may be read on any host
    for (std::size_t i = 0; i < bytes; ++i) v |= std::uint64_t(data_[at + i]) << (8 * i);
    return v;
  }

  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

namespace detail {

inline bool parse_dtype(const std::string& s, StDtype& out) {
  for (int i = 0; i <= static_cast<int>(StDtype::F64); ++i)
    if (s == dtype_name(static_cast<StDtype>(i))) {
      out = static_cast<StDtype>(i);
      return true;
    }
  return false;
}

/// A JSON number that is an integer >= 0 (nlohmann keeps 5 as unsigned, -5 as integer, 5.0 as float).
inline bool json_u64(const nlohmann::json& j, std::uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<std::uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) {
    out = static_cast<std::uint64_t>(j.get<std::int64_t>());
    return true;
  }
  return false;
}

}  // namespace detail

inline Status SafeTensors::parse(const unsigned char* data, std::size_t size, SafeTensors& out) {
  out = SafeTensors{};
  if (data == nullptr && size != 0) return Status::invalid_argument("safetensors", "null data");
  if (size < 8) return Status::invalid_argument("safetensors", "shorter than the 8-byte header length");
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(data[i]) << (8 * i);
  if (n > kMaxHeaderBytes)
    return Status::invalid_argument("safetensors header length", std::to_string(n) + " bytes is over the limit of 100 MB");
  if (n > size - 8)
    return Status::invalid_argument("safetensors header length",
                                    std::to_string(n) + " bytes run past the end of the " + std::to_string(size) + "-byte file");
  const unsigned char* header = data + 8;
  const std::size_t buffer_begin = 8 + static_cast<std::size_t>(n);
  const std::size_t buffer_size = size - buffer_begin;

  // No exceptions: allow_exceptions = false yields a discarded value on a syntax error, and the
  // parser rejects ill-formed UTF-8 inside strings. The catch is for allocation failure only.
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header, header + n, nullptr, /*allow_exceptions=*/false);
  } catch (const std::exception& e) {
    return Status::invalid_argument("safetensors header", std::string("cannot be parsed: ") + e.what());
  }
  if (j.is_discarded()) return Status::invalid_argument("safetensors header", "not valid JSON (or not valid UTF-8)");
  if (!j.is_object()) return Status::invalid_argument("safetensors header", "not a JSON object");

  SafeTensors st;
  st.data_ = data;
  st.size_ = size;
  for (const auto& [name, entry] : j.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Status::invalid_argument("safetensors __metadata__", "not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) return Status::invalid_argument("safetensors __metadata__." + k, "not a string");
        st.metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string what = "safetensors tensor '" + name + "'";
    if (!entry.is_object()) return Status::invalid_argument(what, "not an object");
    TensorInfo t;
    t.name = name;
    const auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) return Status::invalid_argument(what + ".dtype", "missing or not a string");
    if (!detail::parse_dtype(dt->get<std::string>(), t.dtype))
      return Status::invalid_argument(what + ".dtype", "unknown dtype '" + dt->get<std::string>() + "'");
    const auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) return Status::invalid_argument(what + ".shape", "missing or not an array");
    std::uint64_t count = 1;
    for (const auto& d : *sh) {
      std::uint64_t v = 0;
      if (!detail::json_u64(d, v)) return Status::invalid_argument(what + ".shape", "holds a value that is not a non-negative integer");
      if (__builtin_mul_overflow(count, v, &count)) return Status::invalid_argument(what + ".shape", "element count overflows 64 bits");
      t.shape.push_back(v);
    }
    t.elements = count;
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(count, std::uint64_t(dtype_size(t.dtype)), &bytes))
      return Status::invalid_argument(what + ".shape", "byte size overflows 64 bits");
    const auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2)
      return Status::invalid_argument(what + ".data_offsets", "missing or not an array of two integers");
    std::uint64_t b = 0, e = 0;
    if (!detail::json_u64((*off)[0], b) || !detail::json_u64((*off)[1], e))
      return Status::invalid_argument(what + ".data_offsets", "not non-negative integers");
    if (b > e) return Status::invalid_argument(what + ".data_offsets", "begin is after end");
    if (e > buffer_size)
      return Status::invalid_argument(what + ".data_offsets",
                                      "end " + std::to_string(e) + " is past the " + std::to_string(buffer_size) + "-byte buffer");
    if (e - b != bytes)
      return Status::invalid_argument(what + ".data_offsets",
                                      "span " + std::to_string(e - b) + " bytes but shape and dtype need " + std::to_string(bytes));
    t.begin = buffer_begin + static_cast<std::size_t>(b);
    t.end = buffer_begin + static_cast<std::size_t>(e);
    for (const auto& k : entry.items())
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets")
        return Status::invalid_argument(what + "." + k.key(), "unknown field");
    st.tensors_.push_back(std::move(t));
  }
  // Overlap: sorted by begin, each tensor must start at or after the previous one's end (empty
  // tensors overlap nothing).
  std::sort(st.tensors_.begin(), st.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  std::size_t reach = buffer_begin;
  const TensorInfo* last = nullptr;
  for (const TensorInfo& t : st.tensors_) {
    if (t.begin == t.end) continue;
    if (t.begin < reach)
      return Status::invalid_argument("safetensors tensor '" + t.name + "'.data_offsets", "overlaps tensor '" + last->name + "'");
    reach = t.end;
    last = &t;
  }
  for (std::size_t i = 0; i < st.tensors_.size(); ++i) st.index_.emplace(st.tensors_[i].name, i);
  out = std::move(st);
  return Status::success();
}

template <class V>
inline Status SafeTensors::read_floats(const TensorInfo& t, std::vector<V>& out) const {
  out.clear();
  if (t.end > size_ || t.begin > t.end || t.end - t.begin != t.elements * dtype_size(t.dtype))
    return Status::invalid_argument("safetensors tensor '" + t.name + "'", "does not belong to this file");
  const std::size_t n = static_cast<std::size_t>(t.elements), w = dtype_size(t.dtype);
  switch (t.dtype) {
    case StDtype::F64:
    case StDtype::F32:
    case StDtype::F16:
    case StDtype::BF16: break;
    default:
      return Status::invalid_argument("safetensors tensor '" + t.name + "'.dtype",
                                      std::string("is ") + dtype_name(t.dtype) + ", expected a floating-point type (F32, F16, BF16, F64)");
  }
  out.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t bits = load_le(t.begin + i * w, w);
    switch (t.dtype) {
      case StDtype::F64: out[i] = static_cast<V>(__builtin_bit_cast(double, bits)); break;
      case StDtype::F32: out[i] = static_cast<V>(__builtin_bit_cast(float, static_cast<std::uint32_t>(bits))); break;
      case StDtype::F16: out[i] = static_cast<V>(fp16::from_bits(static_cast<std::uint16_t>(bits)).to_float()); break;
      default: out[i] = static_cast<V>(bf16::from_bits(static_cast<std::uint16_t>(bits)).to_float()); break;
    }
  }
  return Status::success();
}

inline Status SafeTensors::read_i64(const TensorInfo& t, std::vector<std::int64_t>& out) const {
  out.clear();
  if (t.end > size_ || t.begin > t.end || t.end - t.begin != t.elements * dtype_size(t.dtype))
    return Status::invalid_argument("safetensors tensor '" + t.name + "'", "does not belong to this file");
  const bool is_signed = t.dtype == StDtype::I8 || t.dtype == StDtype::I16 || t.dtype == StDtype::I32 || t.dtype == StDtype::I64;
  const bool is_unsigned = t.dtype == StDtype::U8 || t.dtype == StDtype::U16 || t.dtype == StDtype::U32 || t.dtype == StDtype::U64;
  if (!is_signed && !is_unsigned)
    return Status::invalid_argument("safetensors tensor '" + t.name + "'.dtype",
                                    std::string("is ") + dtype_name(t.dtype) + ", expected an integer type");
  const std::size_t n = static_cast<std::size_t>(t.elements), w = dtype_size(t.dtype);
  out.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t v = load_le(t.begin + i * w, w);
    if (is_signed && w < 8 && (v >> (8 * w - 1)) != 0) v |= ~std::uint64_t(0) << (8 * w);  // sign-extend
    if (t.dtype == StDtype::U64 && v > static_cast<std::uint64_t>(INT64_MAX)) {
      out.clear();
      return Status::out_of_range("safetensors tensor '" + t.name + "'", "holds a U64 value above INT64_MAX");
    }
    out[i] = static_cast<std::int64_t>(v);
  }
  return Status::success();
}

/// Reads the whole file at `path` into `out` (at most `max_bytes`; larger is an error).
inline Status read_file(const std::string& path, std::vector<unsigned char>& out, std::uint64_t max_bytes = std::uint64_t(1) << 40) {
  out.clear();
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Status::invalid_argument(path, "cannot be opened");
  const std::streamoff end = in.tellg();
  if (end < 0) return Status::runtime_error(path + ": cannot tell its size");
  if (static_cast<std::uint64_t>(end) > max_bytes)
    return Status::out_of_range(path, "is " + std::to_string(end) + " bytes, over the limit of " + std::to_string(max_bytes));
  out.resize(static_cast<std::size_t>(end));
  in.seekg(0);
  if (end > 0 && !in.read(reinterpret_cast<char*>(out.data()), end)) {
    out.clear();
    return Status::runtime_error(path + ": read failed");
  }
  return Status::success();
}

}  // namespace deepshock::lora
