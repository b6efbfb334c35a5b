// Host-only use of an installed deepshock: no kernels, no device.
#include <cstdio>
#include <deepshock/deepshock.hpp>
#include <vector>

int main() {
  namespace ds = deepshock;
  int failures = 0;
  // Round-to-nearest-even conversions; fp8 saturates.
  failures += ds::bf16(1.0f).bits != 0x3F80;
  failures += ds::fp8_e4m3(1000.0f).to_float() != 448.0f;
  // Philox4x32-10 known answer (Random123 kat_vectors, zero counter and key).
  const ds::u32x4 r = ds::Philox4x32::generate(ds::u32x4{{0, 0, 0, 0}}, ds::u32x2{{0, 0}});
  failures += r.v[0] != 0x6627e8d5u;
  // Validation with an error that names the argument.
  std::vector<float> buf(6);
  const ds::TensorRef t = ds::TensorView<float, 2>::contiguous(buf.data(), {2, 3}, ds::MemorySpace::host);
  const ds::Status st = ds::check_view("logits", t, ds::DType::f32, 2, {2, 4}, ds::MemorySpace::host);
  std::printf("consumer_host: %s\n", st.to_string().c_str());
  failures += st.ok();
  std::printf("consumer_host: %s\n", failures == 0 ? "OK" : "FAILED");
  return failures == 0 ? 0 : 1;
}
