// deepshock/core/tensor.hpp — non-owning tensor views.
//
// `TensorView<T, Rank>` is a typed view (pointer, shape, strides in elements, memory space)
// usable in kernels; `TensorRef` is its type-erased form for host APIs that take several dtypes.
// Neither owns memory. Host entry points validate views with the `check_*` helpers, which return
// a Status naming the argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"

namespace deepshock {

/// Element types a TensorRef can describe.
enum class DType : std::uint8_t { f32, f64, f16, bf16, e4m3, e5m2, i8, u8, i32, u32, i64 };

/// Size of one element in bytes.
constexpr std::size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::f64:
    case DType::i64: return 8;
    case DType::f32:
    case DType::i32:
    case DType::u32: return 4;
    case DType::f16:
    case DType::bf16: return 2;
    case DType::e4m3:
    case DType::e5m2:
    case DType::i8:
    case DType::u8: return 1;
  }
  return 0;
}

constexpr std::string_view to_string(DType t) noexcept {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::e4m3: return "e4m3";
    case DType::e5m2: return "e5m2";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::i32: return "i32";
    case DType::u32: return "u32";
    case DType::i64: return "i64";
  }
  return "?";
}

/// The DType of a C++ element type; a compile error for unsupported types.
template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::f32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::f64;
};
template <>
struct dtype_of<fp16> {
  static constexpr DType value = DType::f16;
};
template <>
struct dtype_of<bf16> {
  static constexpr DType value = DType::bf16;
};
template <>
struct dtype_of<fp8_e4m3> {
  static constexpr DType value = DType::e4m3;
};
template <>
struct dtype_of<fp8_e5m2> {
  static constexpr DType value = DType::e5m2;
};
template <>
struct dtype_of<std::int8_t> {
  static constexpr DType value = DType::i8;
};
template <>
struct dtype_of<std::uint8_t> {
  static constexpr DType value = DType::u8;
};
template <>
struct dtype_of<std::int32_t> {
  static constexpr DType value = DType::i32;
};
template <>
struct dtype_of<std::uint32_t> {
  static constexpr DType value = DType::u32;
};
template <>
struct dtype_of<std::int64_t> {
  static constexpr DType value = DType::i64;
};
template <class T>
inline constexpr DType dtype_of_v = dtype_of<T>::value;

/// Where the memory of a view lives. `device` memory is only dereferenced by kernels.
enum class MemorySpace : std::uint8_t { host, device };

inline constexpr int kMaxRank = 4;

/// Typed, strided, non-owning view. Strides count elements, not bytes.
template <class T, int Rank>
struct TensorView {
  static_assert(Rank >= 1 && Rank <= kMaxRank, "deepshock::TensorView supports ranks 1 to 4.");
  T* data = nullptr;
  std::int64_t shape[Rank] = {};
  std::int64_t stride[Rank] = {};
  MemorySpace space = MemorySpace::device;

  /// A contiguous row-major view over `data` with the given extents.
  static TensorView contiguous(T* data, std::initializer_list<std::int64_t> extents, MemorySpace space = MemorySpace::device) {
    TensorView v;
    v.data = data;
    v.space = space;
    int i = 0;
    for (std::int64_t e : extents) {
      if (i < Rank) v.shape[i] = e;
      ++i;
    }
    std::int64_t s = 1;
    for (int d = Rank - 1; d >= 0; --d) {
      v.stride[d] = s;
      s *= v.shape[d];
    }
    return v;
  }

  DEEPSHOCK_HOST_DEVICE std::int64_t numel() const {
    std::int64_t n = 1;
    for (int d = 0; d < Rank; ++d) n *= shape[d];
    return n;
  }
  DEEPSHOCK_HOST_DEVICE bool is_contiguous() const {
    std::int64_t s = 1;
    for (int d = Rank - 1; d >= 0; --d) {
      if (shape[d] != 1 && stride[d] != s) return false;
      s *= shape[d];
    }
    return true;
  }
  template <class... I>
  DEEPSHOCK_HOST_DEVICE T& operator()(I... idx) const {
    static_assert(sizeof...(I) == Rank, "deepshock::TensorView: one index per dimension.");
    const std::int64_t ix[] = {static_cast<std::int64_t>(idx)...};
    std::int64_t off = 0;
    for (int d = 0; d < Rank; ++d) off += ix[d] * stride[d];
    return data[off];
  }
};

/// Type-erased view for host APIs.
struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::f32;
  int rank = 0;
  std::int64_t shape[kMaxRank] = {};
  std::int64_t stride[kMaxRank] = {};
  MemorySpace space = MemorySpace::device;

  TensorRef() = default;
  template <class T, int Rank>
  TensorRef(const TensorView<T, Rank>& v)  // NOLINT: implicit by design
      : data(const_cast<void*>(static_cast<const void*>(v.data))), dtype(dtype_of_v<std::remove_cv_t<T>>), rank(Rank), space(v.space) {
    for (int d = 0; d < Rank; ++d) {
      shape[d] = v.shape[d];
      stride[d] = v.stride[d];
    }
  }

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= shape[d];
    return n;
  }
  /// Back to a typed view; the caller has checked dtype and rank (see check_view).
  template <class T, int Rank>
  TensorView<T, Rank> as() const {
    TensorView<T, Rank> v;
    v.data = static_cast<T*>(data);
    v.space = space;
    for (int d = 0; d < Rank; ++d) {
      v.shape[d] = shape[d];
      v.stride[d] = stride[d];
    }
    return v;
  }
};

namespace detail {
inline std::string shape_string(const std::int64_t* shape, int rank) {
  std::string s = "[";
  for (int d = 0; d < rank; ++d) {
    if (d) s += ", ";
    s += std::to_string(shape[d]);
  }
  return s + "]";
}
}  // namespace detail

/// Checks that `v` is non-null (unless empty), of dtype `dtype`, rank `rank`, in memory space
/// `space`, and that every extent matches `shape` (an extent of -1 matches anything).
/// The error names `name`, e.g. "topk_ids: expected shape [7, 8], got [7, 6]".
inline Status check_view(std::string_view name, const TensorRef& v, DType dtype, int rank, std::initializer_list<std::int64_t> shape,
                         MemorySpace space) {
  if (v.rank != rank) return Status::invalid_argument(name, "expected rank " + std::to_string(rank) + ", got " + std::to_string(v.rank));
  if (v.dtype != dtype)
    return Status::invalid_argument(name, std::string("expected dtype ") + std::string(to_string(dtype)) + ", got " +
                                              std::string(to_string(v.dtype)));
  if (v.space != space)
    return Status::invalid_argument(name, space == MemorySpace::device ? "expected device memory, got host memory"
                                                                       : "expected host memory, got device memory");
  int d = 0;
  bool match = static_cast<int>(shape.size()) == rank;
  std::int64_t want[kMaxRank] = {};
  for (std::int64_t e : shape) {
    if (d < kMaxRank) want[d] = e;
    if (d < rank && e >= 0 && e != v.shape[d]) match = false;
    ++d;
  }
  if (!match)
    return Status::invalid_argument(name, "expected shape " + detail::shape_string(want, static_cast<int>(shape.size())) + ", got " +
                                              detail::shape_string(v.shape, v.rank));
  for (int k = 0; k < rank; ++k)
    if (v.shape[k] < 0) return Status::invalid_argument(name, "negative extent");
  if (v.data == nullptr && v.numel() > 0) return Status::invalid_argument(name, "must not be null");
  return Status::success();
}

/// Checks that `v` is dense row-major.
inline Status check_contiguous(std::string_view name, const TensorRef& v) {
  std::int64_t s = 1;
  for (int d = v.rank - 1; d >= 0; --d) {
    if (v.shape[d] != 1 && v.stride[d] != s) return Status::invalid_argument(name, "must be contiguous (row-major)");
    s *= v.shape[d];
  }
  return Status::success();
}

/// Checks that `v.data` is aligned to `bytes` (for vector loads).
inline Status check_alignment(std::string_view name, const TensorRef& v, std::size_t bytes) {
  if (reinterpret_cast<std::uintptr_t>(v.data) % bytes != 0)
    return Status::invalid_argument(name, "must be aligned to " + std::to_string(bytes) + " bytes");
  return Status::success();
}

}  // namespace deepshock
