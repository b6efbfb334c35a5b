#include <catch2/catch.hpp>

#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/core/tensor.hpp"

namespace ds = deepshock;

TEST_CASE("Status carries a code and a message naming the argument", "[host]") {
  const ds::Status ok;
  CHECK(ok.ok());
  CHECK(ok.to_string() == "ok");
  const ds::Status bad = ds::Status::invalid_argument("topk_ids", "must not be null");
  CHECK_FALSE(bad.ok());
  CHECK(bad.code() == ds::StatusCode::invalid_argument);
  CHECK(bad.message() == "topk_ids: must not be null");
  CHECK(bad.to_string() == "invalid_argument: topk_ids: must not be null");
  auto chain = [](bool fail) -> ds::Status {
    DEEPSHOCK_RETURN_IF_ERROR(fail ? ds::Status::out_of_range("k", "above 32") : ds::Status::success());
    return ds::Status::internal("reached the end");
  };
  CHECK(chain(true).code() == ds::StatusCode::out_of_range);
  CHECK(chain(false).code() == ds::StatusCode::internal);
}

TEST_CASE("tensor views index with strides and validate with named errors", "[host]") {
  std::vector<float> buf(3 * 5);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(i);
  auto v = ds::TensorView<float, 2>::contiguous(buf.data(), {3, 5}, ds::MemorySpace::host);
  CHECK(v.numel() == 15);
  CHECK(v.is_contiguous());
  CHECK(v(2, 4) == 14.0f);
  ds::TensorView<float, 2> t = v;  // transposed view
  t.shape[0] = 5;
  t.shape[1] = 3;
  t.stride[0] = 1;
  t.stride[1] = 5;
  CHECK(t(4, 2) == 14.0f);
  CHECK_FALSE(t.is_contiguous());

  const ds::TensorRef r = v;
  CHECK(r.dtype == ds::DType::f32);
  CHECK(ds::check_view("x", r, ds::DType::f32, 2, {3, 5}, ds::MemorySpace::host).ok());
  CHECK(ds::check_view("x", r, ds::DType::f32, 2, {-1, 5}, ds::MemorySpace::host).ok());
  const ds::Status shape = ds::check_view("x", r, ds::DType::f32, 2, {3, 6}, ds::MemorySpace::host);
  CHECK(shape.message() == "x: expected shape [3, 6], got [3, 5]");
  CHECK(ds::check_view("x", r, ds::DType::bf16, 2, {3, 5}, ds::MemorySpace::host).message() == "x: expected dtype bf16, got f32");
  CHECK(ds::check_view("x", r, ds::DType::f32, 3, {3, 5, 1}, ds::MemorySpace::host).message() == "x: expected rank 3, got 2");
  CHECK(ds::check_view("x", r, ds::DType::f32, 2, {3, 5}, ds::MemorySpace::device).message() ==
        "x: expected device memory, got host memory");
  ds::TensorRef null = r;
  null.data = nullptr;
  CHECK(ds::check_view("weights", null, ds::DType::f32, 2, {3, 5}, ds::MemorySpace::host).message() == "weights: must not be null");
  CHECK(ds::check_contiguous("x", ds::TensorRef(t)).message() == "x: must be contiguous (row-major)");
  CHECK(ds::check_alignment("x", r, 4).ok());
  ds::TensorRef off = r;
  off.data = static_cast<char*>(off.data) + 2;
  CHECK(ds::check_alignment("x", off, 16).message() == "x: must be aligned to 16 bytes");
  CHECK(ds::dtype_size(ds::DType::e4m3) == 1);
  CHECK(ds::dtype_size(ds::DType::bf16) == 2);
}
