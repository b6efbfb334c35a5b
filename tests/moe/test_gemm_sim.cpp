// The tests of gemm_tests.inc, run on the sim backend, plus a bitwise guard for refactoring the
// grouped GEMM: outputs of fixed-seed problems must keep the FNV-1a hashes recorded from the
// kernels before moe/grouped_gemm.hpp was split into moe/gemm/ (commit c95d3c8, built with this
// file against that tree's include/; DS_PRINT_GEMM_HASHES=1 prints the hashes). Simulator
// only: a GPU accumulates in another order, so its bits differ (and are compared against
// themselves by the layer tests' reproducibility checks).
#include "backend_sim.hpp"
#include "gemm_tests.inc"

#include <cstdio>
#include <cstdlib>

namespace {

std::uint64_t fnv1a(const void* p, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ULL) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

/// GEMM 1 and GEMM 2 (ordered epilogue) of a fixed problem; the hash of both outputs' bits.
template <class T, class Tile>
std::uint64_t run_hash(std::uint64_t seed, int groups, int n, int k, bool stream_k) {
  std::mt19937_64 rng(seed);
  gemm_test::GroupedProblem<T> P(groups, n, k, rng);
  using Up = moe::ActEpilogue<ds::act::SwiGLU, T>;
  const std::vector<int> tiles = P.tile_offsets(Tile::kBM);
  auto d_a = upload_nonnull(P.a), d_b0 = upload_nonnull(P.b0), d_b1 = upload_nonnull(P.b1);
  auto d_rows = upload_nonnull(P.a_rows), d_off = upload_nonnull(P.offsets), d_tiles = upload_nonnull(tiles);
  auto d_scale = upload_nonnull(P.scale), d_dest = upload_nonnull(P.dest);
  auto d_h = poisoned_nonnull<T>(std::size_t(P.rows) * P.n);
  auto d_out = poisoned_nonnull<float>(std::size_t(P.rows) * P.k);
  const long long slots = moe::max_m_tiles(P.rows, Tile::kBM, P.groups);
  moe::GemmBatch<T, Up> b1;
  b1.add({d_a.data(), P.k, d_rows.data(), d_b0.data(), d_b1.data(), static_cast<long long>(P.n) * P.k, P.n, P.k, d_off.data(),
          d_tiles.data(), P.groups, 0},
         Up{d_h.data(), P.n}, slots, Tile::kBN);
  moe::DownEpilogue<false> de;
  de.out = d_out.data();
  de.ld = P.k;
  de.dest_row = d_dest.data();
  de.scale = d_scale.data();
  moe::GemmBatch<T, moe::DownEpilogue<false>> b2;
  b2.add({d_h.data(), P.n, nullptr, d_b0.data(), nullptr, static_cast<long long>(P.n) * P.k, P.k, P.n, d_off.data(), d_tiles.data(),
          P.groups, 0},
         de, slots, Tile::kBN);
  gemm_test::GemmLauncher<T, Tile> launch{stream_k};
  DS_REQUIRE_OK(launch(b1));
  DS_REQUIRE_OK(launch(b2));
  const std::vector<T> h = download(d_h, std::size_t(P.rows) * P.n);
  const std::vector<float> out = download(d_out, std::size_t(P.rows) * P.k);
  return fnv1a(out.data(), out.size() * sizeof(float), fnv1a(h.data(), h.size() * sizeof(T)));
}

}  // namespace

TEST_CASE("grouped GEMM outputs are bitwise those recorded before the split (fixed seeds)", "[moe][gemm][sim]") {
  using Decode = moe::GemmTile<16, 64, 128, 1, 4, 4>;
  using Prefill = moe::GemmTile<64, 64, 128, 2, 2, 3>;
  struct Row {
    const char* name;
    std::uint64_t (*run)();
    std::uint64_t expected;
  };
  const Row rows[] = {
      {"fp32 decode", [] { return run_hash<float, Decode>(11, 5, 72, 136, false); }, 0x24f485866201820aull},
      {"fp32 prefill", [] { return run_hash<float, Prefill>(12, 5, 72, 136, false); }, 0x454b1b13727f139eull},
      {"fp32 stream-K", [] { return run_hash<float, Decode>(13, 5, 72, 136, true); }, 0x802f4de76b0aa289ull},
      {"bf16 decode", [] { return run_hash<ds::bf16, Decode>(14, 4, 88, 200, false); }, 0x45c4207d3651f9daull},
      {"bf16 prefill", [] { return run_hash<ds::bf16, Prefill>(15, 4, 88, 200, false); }, 0xc2246aa2a4066b02ull},
      {"bf16 stream-K", [] { return run_hash<ds::bf16, Decode>(16, 4, 88, 200, true); }, 0xebb4f38647a2d911ull},
      {"fp16 decode", [] { return run_hash<ds::fp16, Decode>(17, 3, 64, 72, false); }, 0x312107a2f3d6d113ull},
      {"bf16 wgmma", [] { return run_hash<ds::bf16, moe::WgmmaTile<64, 64, 3>>(18, 3, 88, 200, false); }, 0xb1763fb8fc09efdbull},
      {"fp16 sw128 mma.sync", [] { return run_hash<ds::fp16, moe::WgmmaTile<64, 64, 3, false>>(19, 3, 88, 200, false); },
       0x9538d157c03bff80ull},
  };
  const bool print = std::getenv("DS_PRINT_GEMM_HASHES") != nullptr;
  for (const Row& r : rows) {
    const std::uint64_t got = r.run();
    if (print) std::printf("      {\"%s\", ..., 0x%016llxull},\n", r.name, static_cast<unsigned long long>(got));
    INFO(r.name << ": got 0x" << std::hex << got << ", recorded 0x" << r.expected);
    CHECK(got == r.expected);
  }
}
