// Compile-time checks of the routing policies' shape rules (gate/types.hpp, gate/policies.hpp)
// and of the GatePolicy concept (gate/concept.hpp) that Router and Layer check their Gate with:
// compiled with -fsyntax-only and -DDS_CASE=n by CTest (tests/CMakeLists.txt). Case 0 must
// compile; every other case must fail with its static_assert's message.
#include "deepshock/gate/concept.hpp"
#include "deepshock/gate/policies.hpp"

namespace ds = deepshock;
namespace gate = deepshock::gate;

#if DS_CASE == 0  // valid shapes, including the bounds themselves
constexpr int kSum = gate::SoftmaxTopK<ds::Experts<2>, ds::TopK<2>>::kTopK + gate::SigmoidTopK<ds::Experts<1024>, ds::TopK<32>>::kExperts +
                     gate::DeepSeekV3<ds::Experts<256>, ds::TopK<8>, ds::Groups<8, 4>>::kGroupSize;
static_assert(kSum == 2 + 1024 + 32);
// Every catalogue policy is a GatePolicy.
static_assert(gate::GatePolicy<gate::SoftmaxTopK<ds::Experts<8>, ds::TopK<2>>> &&
              gate::GatePolicy<gate::TopKSoftmax<ds::Experts<8>, ds::TopK<2>>> &&
              gate::GatePolicy<gate::SigmoidTopK<ds::Experts<8>, ds::TopK<2>>> &&
              gate::GatePolicy<gate::DeepSeekV2<ds::Experts<64>, ds::TopK<6>, ds::Groups<8, 3>>> &&
              gate::GatePolicy<gate::DeepSeekV3<ds::Experts<256>, ds::TopK<8>, ds::Groups<8, 4>>> &&
              gate::GatePolicy<gate::Switch<ds::Experts<8>>> && gate::GatePolicy<gate::NoisyTopK<ds::Experts<8>, ds::TopK<2>>>);
#elif DS_CASE == 1  // k > E
constexpr int kBad = gate::SoftmaxTopK<ds::Experts<8>, ds::TopK<9>>::kTopK;
#elif DS_CASE == 2  // E above 1024
constexpr int kBad = gate::SoftmaxTopK<ds::Experts<1025>, ds::TopK<8>>::kTopK;
#elif DS_CASE == 3  // E below 2
constexpr int kBad = gate::SoftmaxTopK<ds::Experts<1>, ds::TopK<1>>::kTopK;
#elif DS_CASE == 4  // k above 32
constexpr int kBad = gate::SoftmaxTopK<ds::Experts<64>, ds::TopK<33>>::kTopK;
#elif DS_CASE == 5  // groups of unequal size
constexpr int kBad = gate::DeepSeekV2<ds::Experts<160>, ds::TopK<6>, ds::Groups<7, 3>>::kTopK;
#elif DS_CASE == 6  // the kept groups hold fewer than k experts
constexpr int kBad = gate::DeepSeekV2<ds::Experts<64>, ds::TopK<9>, ds::Groups<8, 1>>::kTopK;
#elif DS_CASE == 7  // keep more groups than there are
constexpr int kBad = gate::DeepSeekV2<ds::Experts<64>, ds::TopK<4>, ds::Groups<8, 9>>::kTopK;
#elif DS_CASE == 8  // a type that is not a gating policy (no scoring rule): what Router and Layer assert
struct NotAGate : gate::PolicyShape<ds::Experts<8>, ds::TopK<2>>, gate::PolicyDefaults {
  static constexpr const char* kName = "NotAGate";
};
static_assert(gate::GatePolicy<NotAGate>, "not a gating policy (gate::GatePolicy)");
#endif
