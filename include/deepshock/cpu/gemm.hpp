// deepshock/cpu/gemm.hpp — the CPU GEMM under the fast expert executor: oneDNN's matmul.
//
// One product shape: C[M, N] (row stride ldc) = A[M, K] (row stride lda) . B[N, K]^T (row
// stride ldb), A and B both fp32 or both bf16 with C in fp32, or both int8 with C the exact int32
// sums (W8A8: oneDNN's VNNI / AMX-INT8 kernels; the executor scales them). B is a block of rows of a weight matrix exactly as
// deepshock stores it ([out, in] row-major), so no weight is ever repacked or copied.
//
// Why oneDNN: measured on this project's 2-core AVX-512 build machine (one thread, K = 2048,
// N = 2816, the DeepSeek-V2-Lite gate/up shape), oneDNN 2.6 (Debian's libdnnl) runs its brgemm
// kernels at 92 GFLOP/s in fp32 and 117 GFLOP/s in bf16 (AVX512-BF16) for M = 48 rows, and
// 24 GB/s of bf16 weights for M = 1; it also has int8 (VNNI) kernels. OpenBLAS 0.3.21 (Debian's)
// reaches 26 GFLOP/s in fp32 for M = 48 and 1.4 GFLOP/s for M = 1, and was built without its
// bf16 GEMM.
//
// Primitives are created for fixed M (oneDNN's runtime-M matmul falls back to a slower generic
// kernel: 39 instead of 92 GFLOP/s in fp32 at M = 48) and cached by shape; creating one costs
// about 10 us, once per new shape. Each primitive runs single-threaded with a caller-provided
// scratchpad on its thread's own stream: the executor parallelises over (expert, tile) itself.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "deepshock/core/status.hpp"

namespace deepshock::cpu {

/// Element type of A and B (C: fp32, or int32 for s8).
enum class GemmElem : std::uint8_t { f32, bf16, s8 };

inline const char* elem_name(GemmElem e) { return e == GemmElem::bf16 ? "bf16" : e == GemmElem::s8 ? "int8" : "fp32"; }

/// C[m, n] (fp32 or int32, row stride ldc) = A[m, k] (row stride lda) . B[n, k]^T (row stride ldb).
struct GemmShape {
  int m = 0, n = 0, k = 0;
  long long lda = 0, ldb = 0, ldc = 0;
  GemmElem elem = GemmElem::f32;
  bool operator==(const GemmShape&) const = default;
};

struct GemmShapeHash {
  std::size_t operator()(const GemmShape& s) const noexcept {
    std::size_t h = static_cast<std::size_t>(s.elem);
    for (const long long v : {static_cast<long long>(s.m), static_cast<long long>(s.n), static_cast<long long>(s.k), s.lda, s.ldb, s.ldc})
      h = h * 1000003u ^ static_cast<std::size_t>(v);
    return h;
  }
};

/// oneDNN matmul primitives by shape, one stream and one scratchpad per thread.
/// prepare() creates and sizes (call it from one thread); run() may be called from `threads`
/// threads at once, each with its own thread index, on prepared shapes only.
class GemmCache {
 public:
  explicit GemmCache(int threads) : threads_(threads < 1 ? 1 : threads) {
    try {
      engine_ = dnnl::engine(dnnl::engine::kind::cpu, 0);
      for (int i = 0; i < threads_; ++i) streams_.emplace_back(engine_);
      scratch_.resize(static_cast<std::size_t>(threads_));
    } catch (const dnnl::error& e) {
      status_ = Status::runtime_error(std::string("deepshock::cpu::GemmCache: oneDNN CPU engine: ") + e.what());
    }
  }

  Status status() const { return status_; }
  int threads() const { return threads_; }
  std::size_t size() const { return cache_.size(); }

  /// Creates the primitive for `s` unless it exists; unsupported where oneDNN has no kernel for
  /// it on this CPU (bf16 without AVX-512, for instance).
  Status prepare(const GemmShape& s) {
    DEEPSHOCK_RETURN_IF_ERROR(status_);
    if (cache_.count(s) != 0) return Status::success();
    try {
      using dt = dnnl::memory::data_type;
      const dt in = s.elem == GemmElem::bf16 ? dt::bf16 : s.elem == GemmElem::s8 ? dt::s8 : dt::f32;
      const dt out = s.elem == GemmElem::s8 ? dt::s32 : dt::f32;
      const dnnl::memory::desc a({s.m, s.k}, in, {s.lda, 1}), b({s.k, s.n}, in, {1, s.ldb}), c({s.m, s.n}, out, {s.ldc, 1});
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine_);
      Entry e{dnnl::matmul(pd), a, b, c, pd.scratchpad_desc()};
      const std::size_t bytes = e.scratch.get_size();
      for (auto& sc : scratch_)
        if (sc.size() < bytes) sc.resize(bytes);
      cache_.emplace(s, std::move(e));
    } catch (const dnnl::error& e) {
      return Status::unsupported(std::string("deepshock::cpu: oneDNN has no matmul for ") + elem_name(s.elem) + " [" + std::to_string(s.m) +
                                 " x " + std::to_string(s.k) + "] . [" + std::to_string(s.k) + " x " + std::to_string(s.n) +
                                 "] on this CPU: " + e.what());
    }
    return Status::success();
  }

  /// Drops every primitive once more than kMaxShapes are cached: a bound on memory for callers
  /// whose shapes keep changing. Call it before a batch's prepare() calls, never between them.
  void trim() {
    if (cache_.size() > kMaxShapes) cache_.clear();
  }

  /// Runs a prepared shape on thread `thread`'s stream. False if the shape was not prepared or
  /// oneDNN failed (no exception leaves: this runs inside parallel regions).
  bool run(const GemmShape& s, const void* a, const void* b, void* c, int thread) noexcept {
    const auto it = cache_.find(s);
    if (it == cache_.end() || thread < 0 || thread >= threads_) return false;
    try {
      const Entry& e = it->second;
      auto& sc = scratch_[static_cast<std::size_t>(thread)];
      dnnl::stream& st = streams_[static_cast<std::size_t>(thread)];
      const dnnl::memory ma(e.a, engine_, const_cast<void*>(a)), mb(e.b, engine_, const_cast<void*>(b)), mc(e.c, engine_, c),
          ms(e.scratch, engine_, sc.empty() ? nullptr : sc.data());
      e.prim.execute(st, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_SCRATCHPAD, ms}});
      st.wait();
      return true;
    } catch (...) {
      return false;
    }
  }

 private:
  static constexpr std::size_t kMaxShapes = 4096;
  struct Entry {
    dnnl::matmul prim;
    dnnl::memory::desc a, b, c, scratch;
  };
  int threads_;
  Status status_;
  dnnl::engine engine_;
  std::vector<dnnl::stream> streams_;
  std::vector<std::vector<unsigned char>> scratch_;
  std::unordered_map<GemmShape, Entry, GemmShapeHash> cache_;
};

}  // namespace deepshock::cpu
