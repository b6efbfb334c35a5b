// Differential-privacy accounting: Gaussian/Laplace calibration and the RDP accountant of the
// Poisson-subsampled Gaussian, against published numbers (Balle & Wang 2018, TensorFlow Privacy) and golden data written by an
// independent implementation (tools/dp_golden.py, numpy/scipy, checked with 50-digit mpmath).
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "deepshock/privacy/accountant.hpp"
#include "deepshock/privacy/calibration.hpp"

#ifndef DEEPSHOCK_TEST_DATA_DIR
#error "DEEPSHOCK_TEST_DATA_DIR must name the folder holding dp_golden.txt"
#endif

namespace dp = deepshock::privacy;

namespace {

// Tolerances. The golden file's float64 values agree with 50-digit mpmath to ~1e-11 (RDP) and
// ~2e-13 (analytic σ); both implementations lose ~1e-16·Σ|terms| absolutely near q = 1/2.
constexpr double kCalibRel = 1e-9;     // analytic σ, golden vs C++ (both bisect to the last bit)
constexpr double kExtremeRel = 1e-11;  // analytic σ at extremes vs 400-digit mpmath (seen: 2e-12 at δ ≈ 1)
constexpr double kClassicRel = 1e-13;  // closed form
constexpr double kRdpRel = 1e-9;       // RDP per step, relative ...
constexpr double kRdpAbs = 1e-15;      // ... plus absolute (values down to ~1e-11 are in the table)
constexpr double kEpsRel = 1e-9;       // composed ε (values 1..11)
constexpr double kRefRel = 1e-6;       // the 7-digit published calibration numbers

bool close(double got, double want, double rel, double abs_tol = 0.0) { return std::fabs(got - want) <= rel * std::fabs(want) + abs_tol; }

std::vector<std::vector<std::string>> golden_rows(const std::string& kind) {
  std::ifstream in(std::string(DEEPSHOCK_TEST_DATA_DIR) + "/dp_golden.txt");
  REQUIRE(in.good());
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::vector<std::string> fields;
    for (std::string f; ss >> f;) fields.push_back(f);
    if (!fields.empty() && fields[0] == kind) rows.push_back(fields);
  }
  return rows;
}

double num(const std::string& s) { return std::strtod(s.c_str(), nullptr); }  // reads "nan" too

// Bitwise equality: "unchanged" means the very same doubles (NaN orders included), not close ones.
bool same_bits(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](double x, double y) { return same_bits(x, y); });
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

double eps_for(double q, double sigma, std::int64_t steps, double delta, dp::Conversion c = dp::Conversion::improved) {
  dp::RdpAccountant acc;
  REQUIRE(acc.compose(q, sigma, steps).ok());
  dp::EpsilonResult r;
  REQUIRE(acc.epsilon(delta, c, r).ok());
  return r.epsilon;
}

}  // namespace

TEST_CASE("Gaussian calibration matches the published values and the golden table", "[host]") {
  double s = 0.0;
  REQUIRE(dp::analytic_gaussian_sigma(1.0, 1e-5, 1.0, s).ok());
  CHECK(close(s, 3.730632, kRefRel));
  // The classic bound is proven for ε < 1 only; the published 4.844805 is the formula at ε = 1.
  REQUIRE(dp::classic_gaussian_sigma(std::nextafter(1.0, 0.0), 1e-5, 1.0, s).ok());
  CHECK(close(s, 4.844805, kRefRel));
  const deepshock::Status at_one = dp::classic_gaussian_sigma(1.0, 1e-5, 1.0, s);
  CHECK(at_one.code() == deepshock::StatusCode::invalid_argument);
  CHECK(at_one.message().rfind("epsilon: must be < 1", 0) == 0);

  const auto rows = golden_rows("calib");
  REQUIRE(rows.size() >= 8);
  for (const auto& r : rows) {
    const double eps = num(r[1]), delta = num(r[2]), sens = num(r[3]), analytic = num(r[4]), classic = num(r[5]);
    INFO("eps " << eps << " delta " << delta << " sensitivity " << sens);
    double sa = 0.0, sc = 0.0;
    REQUIRE(dp::analytic_gaussian_sigma(eps, delta, sens, sa).ok());
    CHECK(close(sa, analytic, kCalibRel));
    // σ is the smallest that satisfies the Balle–Wang condition: a hair less violates it.
    CHECK(dp::detail::analytic_gaussian_log_delta(sa, eps, sens) <= std::log(delta));
    CHECK(dp::detail::analytic_gaussian_log_delta(sa * (1 - 1e-12), eps, sens) > std::log(delta));
    const deepshock::Status st = dp::classic_gaussian_sigma(eps, delta, sens, sc);
    if (std::isnan(classic)) {
      CHECK_FALSE(st.ok());
    } else {
      REQUIRE(st.ok());
      CHECK(close(sc, classic, kClassicRel));
      CHECK(sa < sc);  // the analytic mechanism never needs more noise
    }
  }
  // Extremes (ε or δ down to 1e-300, δ near 1, ε up to 1e6) against 400-digit mpmath.
  const auto extremes = golden_rows("calib_mp");
  CHECK(extremes.size() >= 5);
  for (const auto& r : extremes) {
    const double eps = num(r[1]), delta = num(r[2]), sens = num(r[3]);
    INFO("extreme: eps " << eps << " delta " << delta << " sensitivity " << sens);
    double sa = 0.0;
    REQUIRE(dp::analytic_gaussian_sigma(eps, delta, sens, sa).ok());
    CHECK(close(sa, num(r[4]), kExtremeRel));
  }
  double b = 0.0;
  REQUIRE(dp::laplace_scale(0.5, 2.0, b).ok());
  CHECK(b == 4.0);
}

TEST_CASE("calibration rejects bad inputs with the argument's name", "[host]") {
  double s = -1.0;
  const double nan = std::nan(""), inf = HUGE_VAL;
  auto msg = [](const deepshock::Status& st) { return st.to_string(); };
  CHECK(msg(dp::analytic_gaussian_sigma(0.0, 1e-5, 1.0, s)) == "invalid_argument: epsilon: must be finite and > 0");
  CHECK(msg(dp::analytic_gaussian_sigma(-1.0, 1e-5, 1.0, s)).find("epsilon:") != std::string::npos);
  CHECK(msg(dp::analytic_gaussian_sigma(nan, 1e-5, 1.0, s)).find("epsilon:") != std::string::npos);
  CHECK(msg(dp::analytic_gaussian_sigma(inf, 1e-5, 1.0, s)).find("epsilon:") != std::string::npos);
  CHECK(msg(dp::analytic_gaussian_sigma(1.0, 0.0, 1.0, s)) == "invalid_argument: delta: must be in (0, 1)");
  CHECK(msg(dp::analytic_gaussian_sigma(1.0, 1.0, 1.0, s)).find("delta:") != std::string::npos);
  CHECK(msg(dp::analytic_gaussian_sigma(1.0, nan, 1.0, s)).find("delta:") != std::string::npos);
  CHECK(msg(dp::analytic_gaussian_sigma(1.0, 1e-5, 0.0, s)) == "invalid_argument: sensitivity: must be finite and > 0");
  CHECK(msg(dp::classic_gaussian_sigma(0.5, 2.0, 1.0, s)).find("delta:") != std::string::npos);
  CHECK(msg(dp::classic_gaussian_sigma(0.5, 1e-5, -3.0, s)).find("sensitivity:") != std::string::npos);
  CHECK(msg(dp::laplace_scale(0.0, 1.0, s)).find("epsilon:") != std::string::npos);
  CHECK(msg(dp::laplace_scale(1.0, nan, s)).find("sensitivity:") != std::string::npos);
  CHECK(s == -1.0);  // outputs untouched on error
  // Extremes stay finite and ordered: tiny δ and large ε.
  double tiny = 0.0, wide = 0.0;
  REQUIRE(dp::analytic_gaussian_sigma(1.0, 1e-300, 1.0, tiny).ok());
  REQUIRE(dp::analytic_gaussian_sigma(50.0, 1e-5, 1.0, wide).ok());
  CHECK((std::isfinite(tiny) && tiny > 3.730632 && wide > 0.0 && wide < 3.730632));
}

TEST_CASE("RDP of the subsampled Gaussian matches the golden table", "[host]") {
  const auto rows = golden_rows("rdp");
  REQUIRE(rows.size() >= 300);
  int fractional = 0;
  for (const auto& r : rows) {
    const double q = num(r[1]), sigma = num(r[2]), alpha = num(r[3]), want = num(r[4]);
    INFO("q " << q << " sigma " << sigma << " alpha " << alpha);
    const double got = dp::rdp_subsampled_gaussian(q, sigma, alpha);
    CHECK(close(got, want, kRdpRel, kRdpAbs));
    fractional += alpha != std::floor(alpha);
  }
  CHECK(fractional >= 100);
}

TEST_CASE("RDP edge cases and structural properties", "[host]") {
  // q = 0: nothing is released about anyone; q = 1: the plain Gaussian, α/(2σ²) exactly.
  for (double a : {1.5, 2.0, 7.3, 64.0}) {
    CHECK(dp::rdp_subsampled_gaussian(0.0, 1.3, a) == 0.0);
    CHECK(dp::rdp_subsampled_gaussian(1.0, 1.3, a) == a / (2 * 1.3 * 1.3));
  }
  CHECK(std::isnan(dp::rdp_subsampled_gaussian(1.5, 1.0, 2.0)));
  CHECK(std::isnan(dp::rdp_subsampled_gaussian(0.1, 0.0, 2.0)));
  CHECK(std::isnan(dp::rdp_subsampled_gaussian(0.1, 1.0, 1.0)));
  // RDP is non-decreasing in the order (a property of Rényi divergences), across the switch
  // between the fractional series and the integer sum, and continuous at integers.
  for (double q : {1e-3, 0.01, 0.2, 0.5, 0.95}) {
    for (double sigma : {0.6, 1.0, 3.0, 12.0}) {
      INFO("q " << q << " sigma " << sigma);
      double prev = 0.0;
      for (double a : dp::RdpAccountant::default_orders()) {
        const double v = dp::rdp_subsampled_gaussian(q, sigma, a);
        CHECK(v >= prev * (1 - 1e-12));
        prev = v;
      }
      for (double a : {2.0, 3.0, 5.0}) {
        CHECK(close(dp::rdp_subsampled_gaussian(q, sigma, a + 1e-9), dp::rdp_subsampled_gaussian(q, sigma, a), 1e-6));
      }
      // More noise, less loss.
      CHECK(dp::rdp_subsampled_gaussian(q, sigma * 1.1, 2.5) < dp::rdp_subsampled_gaussian(q, sigma, 2.5));
    }
  }
}

TEST_CASE("composed epsilon matches the published values and the golden table", "[host]") {
  // TensorFlow Privacy's MNIST setting: q = 256/60000, σ = 1.1, 60 epochs (ceil(60·60000/256) = 14063 steps), δ = 1e-5.
  CHECK(std::fabs(eps_for(256.0 / 60000, 1.1, 14063, 1e-5) - 2.60) < 0.005);
  CHECK(std::fabs(eps_for(256.0 / 60000, 1.1, 14063, 1e-5, dp::Conversion::classic) - 3.01) < 0.005);

  const auto rows = golden_rows("eps");
  REQUIRE(rows.size() >= 4);
  for (const auto& r : rows) {
    const double q = num(r[2]), sigma = num(r[3]), delta = num(r[5]);
    const auto steps = static_cast<std::int64_t>(std::strtoll(r[4].c_str(), nullptr, 10));
    INFO(r[1] << ": q " << q << " sigma " << sigma << " steps " << steps);
    dp::RdpAccountant acc;
    REQUIRE(acc.compose(q, sigma, steps).ok());
    dp::EpsilonResult improved, classic;
    REQUIRE(acc.epsilon(delta, dp::Conversion::improved, improved).ok());
    REQUIRE(acc.epsilon(delta, dp::Conversion::classic, classic).ok());
    CHECK(close(improved.epsilon, num(r[6]), kEpsRel));
    CHECK(improved.order == num(r[7]));
    CHECK(close(classic.epsilon, num(r[8]), kEpsRel));
    CHECK(classic.order == num(r[9]));
    CHECK(improved.epsilon < classic.epsilon);
  }
  // Published epsilons (TensorFlow Privacy's MNIST tutorial table), to the digits
  // published: the C++ accountant reproduces them as the script does.
  const auto published = golden_rows("published");
  REQUIRE(published.size() >= 4);
  for (const auto& p : published) {
    const auto row = std::find_if(rows.begin(), rows.end(), [&](const auto& r) { return r[1] == p[1]; });
    REQUIRE(row != rows.end());
    const double q = num((*row)[2]), sigma = num((*row)[3]), delta = num((*row)[5]);
    const auto steps = static_cast<std::int64_t>(std::strtoll((*row)[4].c_str(), nullptr, 10));
    const dp::Conversion c = p[2] == "classic" ? dp::Conversion::classic : dp::Conversion::improved;
    INFO(p[1] << " " << p[2] << ": published " << p[3]);
    CHECK(std::fabs(eps_for(q, sigma, steps, delta, c) - num(p[3])) < 0.5 * std::pow(10.0, -num(p[4])));
  }
  // Composing in pieces equals composing at once.
  dp::RdpAccountant a, b;
  REQUIRE(a.compose(0.01, 2.0, 300).ok());
  REQUIRE(b.compose(0.01, 2.0, 100).ok());
  REQUIRE(b.compose(0.01, 2.0, 200).ok());
  for (std::size_t i = 0; i < a.rdp().size(); ++i) CHECK(close(b.rdp()[i], a.rdp()[i], 1e-14));
}

TEST_CASE("epsilon is monotone in noise and steps", "[host]") {
  const double q = 0.01, delta = 1e-6;
  double prev = HUGE_VAL;
  for (double sigma : {0.5, 0.7, 0.9, 1.1, 1.5, 2.0, 4.0, 8.0, 30.0}) {
    const double e = eps_for(q, sigma, 1000, delta);
    CHECK(e < prev);
    prev = e;
  }
  prev = 0.0;
  for (std::int64_t steps : {1, 2, 10, 100, 1000, 10000, 100000}) {
    const double e = eps_for(q, 1.0, steps, delta);
    CHECK(e > prev);
    prev = e;
  }
}

TEST_CASE("sigma_for_epsilon inverts the accountant", "[host]") {
  const double q = 256.0 / 60000, delta = 1e-5;
  const int steps = 14063;
  for (double target : {0.5, 1.0, 2.5967, 8.0}) {
    double sigma = 0.0;
    REQUIRE(dp::sigma_for_epsilon(q, steps, target, delta, sigma).ok());
    INFO("target " << target << " sigma " << sigma);
    const double e = eps_for(q, sigma, steps, delta);
    CHECK(e <= target);
    CHECK(e >= target * (1 - 1e-6));                               // σ is within kSigmaRelTolerance of the boundary
    CHECK(eps_for(q, sigma * (1 - 1e-8), steps, delta) > target);  // and a hair less noise misses it
  }
  double sigma = 0.0;
  REQUIRE(dp::sigma_for_epsilon(q, steps, 2.596655528680926, delta, sigma).ok());  // golden mnist_ref ε
  CHECK(close(sigma, 1.1, 1e-8));
  REQUIRE(dp::sigma_for_epsilon(q, steps, 3.0083810468337973, delta, sigma, dp::Conversion::classic).ok());
  CHECK(close(sigma, 1.1, 1e-8));
}

TEST_CASE("accounting edge cases: q = 0, steps = 0, the delta floor", "[host]") {
  const double delta = 1e-5;
  // With no privacy loss, ε comes from the δ term alone: min over orders of
  // ln((α−1)/α) − (ln δ + ln α)/(α−1) (improved) and −ln δ/(α−1) (classic).
  double floor_improved = HUGE_VAL, floor_classic = HUGE_VAL;
  for (double a : dp::RdpAccountant::default_orders()) {
    floor_improved = std::fmin(floor_improved, std::log((a - 1) / a) - (std::log(delta) + std::log(a)) / (a - 1));
    floor_classic = std::fmin(floor_classic, -std::log(delta) / (a - 1));
  }
  dp::RdpAccountant acc;
  REQUIRE(acc.compose(0.0, 1.0, 1000).ok());
  REQUIRE(acc.compose(0.3, 1.0, 0).ok());
  for (double v : acc.rdp()) CHECK(v == 0.0);
  dp::EpsilonResult r;
  REQUIRE(acc.epsilon(delta, dp::Conversion::improved, r).ok());
  CHECK(r.epsilon == floor_improved);
  CHECK(r.order == 256.0);
  REQUIRE(acc.epsilon(delta, dp::Conversion::classic, r).ok());
  CHECK(r.epsilon == floor_classic);
  REQUIRE(acc.epsilon(0.5, dp::Conversion::improved, r).ok());
  CHECK(r.epsilon == 0.0);  // clamped

  double sigma = -1.0;
  REQUIRE(dp::sigma_for_epsilon(0.0, 100, 1.0, delta, sigma).ok());
  CHECK(sigma == 0.0);  // nothing sampled: no noise needed
  REQUIRE(dp::sigma_for_epsilon(0.1, 0, 1.0, delta, sigma).ok());
  CHECK(sigma == 0.0);
  CHECK(dp::sigma_for_epsilon(0.01, 100, floor_improved, delta, sigma).message().rfind("target_epsilon: must exceed", 0) == 0);

  // Custom orders.
  CHECK(acc.set_orders({}).message() == "orders: must not be empty");
  CHECK(acc.set_orders({2.0, 1.0}).message() == "orders: orders[1] = 1 is not a finite number > 1");
  REQUIRE(acc.set_orders({2.0, 32.0}).ok());
  REQUIRE(acc.compose(1.0, 2.0, 3).ok());
  CHECK(acc.rdp()[1] == 3 * 32.0 / 8.0);
}

TEST_CASE("accountant rejects bad inputs with the argument's name", "[host]") {
  dp::RdpAccountant acc;
  dp::EpsilonResult r;
  double sigma = -1.0;
  CHECK(acc.compose(-0.1, 1.0, 1).to_string() == "invalid_argument: q: must be in [0, 1]");
  CHECK(acc.compose(1.1, 1.0, 1).message().rfind("q:", 0) == 0);
  CHECK(acc.compose(std::nan(""), 1.0, 1).message().rfind("q:", 0) == 0);
  CHECK(acc.compose(0.1, 0.0, 1).message() == "sigma: must be finite and > 0");
  CHECK(acc.compose(0.1, HUGE_VAL, 1).message().rfind("sigma:", 0) == 0);
  CHECK(acc.compose(0.1, 1.0, -1).message() == "steps: must be >= 0");
  for (double v : acc.rdp()) CHECK(v == 0.0);  // failed calls add nothing
  CHECK(acc.epsilon(0.0, dp::Conversion::improved, r).message() == "delta: must be in (0, 1)");
  CHECK(acc.epsilon(1.0, dp::Conversion::classic, r).message().rfind("delta:", 0) == 0);
  CHECK(dp::epsilon_from_rdp({2.0}, {}, 1e-5, dp::Conversion::improved, r).message().rfind("rdp:", 0) == 0);
  CHECK(dp::sigma_for_epsilon(2.0, 10, 1.0, 1e-5, sigma).message().rfind("q:", 0) == 0);
  CHECK(dp::sigma_for_epsilon(0.1, -1, 1.0, 1e-5, sigma).message().rfind("steps:", 0) == 0);
  CHECK(dp::sigma_for_epsilon(0.1, 10, 0.0, 1e-5, sigma).message() == "target_epsilon: must be finite and > 0");
  CHECK(dp::sigma_for_epsilon(0.1, 10, 1.0, 1.5, sigma).message().rfind("delta:", 0) == 0);
  CHECK(sigma == -1.0);
}

TEST_CASE("epsilon_from_rdp rejects every bad input, naming the argument and element", "[host]") {
  const double nan = std::nan(""), inf = HUGE_VAL;
  const dp::EpsilonResult sentinel{-7.0, -7.0};
  dp::EpsilonResult r = sentinel;
  auto rejects = [&](const std::vector<double>& orders, const std::vector<double>& rdp, double delta, dp::Conversion c,
                     const std::string& message) {
    const deepshock::Status st = dp::epsilon_from_rdp(orders, rdp, delta, c, r);
    INFO("expected: " << message << "; got: " << st.to_string());
    CHECK(st.code() == deepshock::StatusCode::invalid_argument);
    CHECK(st.message() == message);
  };
  const auto imp = dp::Conversion::improved, cls = dp::Conversion::classic;
  // Orders at or below 1, NaN and infinite ones: these used to succeed with ε = 0.
  rejects({2.0, 3.0, 4.0, 0.5}, {0.1, 0.1, 0.1, 0.1}, 1e-5, imp, "orders: orders[3] = 0.5 is not a finite number > 1");
  rejects({1.0, 2.0}, {0.1, 0.1}, 1e-5, cls, "orders: orders[0] = 1 is not a finite number > 1");
  rejects({2.0, nan}, {0.1, 0.1}, 1e-5, imp, "orders: orders[1] = nan is not a finite number > 1");
  rejects({2.0, inf}, {0.1, 0.1}, 1e-5, imp, "orders: orders[1] = inf is not a finite number > 1");
  rejects({-inf, 2.0}, {0.1, 0.1}, 1e-5, cls, "orders: orders[0] = -inf is not a finite number > 1");
  // Negative and NaN RDP values (+∞ is legal; see the next test case).
  rejects({2.0, 3.0}, {0.1, -1e-3}, 1e-5, imp, "rdp: rdp[1] = -0.001 is not a number >= 0 (+inf is allowed)");
  rejects({2.0, 3.0}, {nan, 0.1}, 1e-5, cls, "rdp: rdp[0] = nan is not a number >= 0 (+inf is allowed)");
  rejects({2.0}, {-inf}, 1e-5, imp, "rdp: rdp[0] = -inf is not a number >= 0 (+inf is allowed)");
  // Shapes.
  rejects({}, {}, 1e-5, imp, "orders: must not be empty");
  rejects({2.0, 3.0, 4.0}, {0.1, 0.1}, 1e-5, imp, "rdp: must have one value per order (orders has 3, rdp has 2)");
  rejects({2.0}, {0.1, 0.1}, 1e-5, cls, "rdp: must have one value per order (orders has 1, rdp has 2)");
  // δ and the conversion.
  for (double delta : {0.0, 1.0, -1e-5, 2.0, nan, inf}) {
    rejects({2.0}, {0.1}, delta, imp, "delta: must be in (0, 1)");
  }
  rejects({2.0}, {0.1}, 1e-5, static_cast<dp::Conversion>(7), "conversion: is not a Conversion value (7)");
  // Outputs are written on success only.
  CHECK(r.epsilon == sentinel.epsilon);
  CHECK(r.order == sentinel.order);
}

TEST_CASE("epsilon_from_rdp: +inf RDP skips its order; all +inf gives epsilon = +inf, never 0", "[host]") {
  const double inf = HUGE_VAL, delta = 1e-5;
  dp::EpsilonResult r;
  // An infinite order cannot be the minimum; the finite one is used, exactly as if alone.
  for (dp::Conversion c : {dp::Conversion::improved, dp::Conversion::classic}) {
    dp::EpsilonResult alone;
    REQUIRE(dp::epsilon_from_rdp({4.0}, {0.3}, delta, c, alone).ok());
    REQUIRE(dp::epsilon_from_rdp({2.0, 4.0, 8.0}, {inf, 0.3, inf}, delta, c, r).ok());
    CHECK(same_bits(r.epsilon, alone.epsilon));
    CHECK(r.order == 4.0);
    // Every order infinite: success with ε = +∞ (no finite guarantee) and no order.
    REQUIRE(dp::epsilon_from_rdp({2.0, 4.0}, {inf, inf}, delta, c, r).ok());
    CHECK(r.epsilon == inf);
    CHECK(std::isnan(r.order));
    // The largest finite RDP is a finite order like any other: its ε is no smaller than it.
    REQUIRE(dp::epsilon_from_rdp({2.0}, {std::numeric_limits<double>::max()}, 0.5, c, r).ok());
    CHECK(r.epsilon == std::numeric_limits<double>::max());
    CHECK(r.order == 2.0);
  }
}

TEST_CASE("rdp_subsampled_gaussian's Status form names each bad argument", "[host]") {
  const double nan = std::nan(""), inf = HUGE_VAL;
  double rdp = -7.0;
  auto rejects = [&](double q, double sigma, double alpha, const std::string& message) {
    const deepshock::Status st = dp::rdp_subsampled_gaussian(q, sigma, alpha, rdp);
    INFO("q " << q << " sigma " << sigma << " alpha " << alpha << ": " << st.to_string());
    CHECK(st.code() == deepshock::StatusCode::invalid_argument);
    CHECK(st.message() == message);
    CHECK(std::isnan(dp::rdp_subsampled_gaussian(q, sigma, alpha)));  // the plain form: NaN
  };
  for (double q : {-0.1, 1.5, nan, -inf}) rejects(q, 1.0, 2.0, "q: must be in [0, 1]");
  for (double sigma : {0.0, -1.0, nan, inf}) rejects(0.1, sigma, 2.0, "sigma: must be finite and > 0");
  rejects(0.1, 1.0, 1.0, "alpha: 1 is not a finite number > 1");
  rejects(0.1, 1.0, 0.5, "alpha: 0.5 is not a finite number > 1");
  rejects(0.1, 1.0, -2.0, "alpha: -2 is not a finite number > 1");
  rejects(0.1, 1.0, nan, "alpha: nan is not a finite number > 1");
  rejects(0.1, 1.0, inf, "alpha: inf is not a finite number > 1");
  rejects(0.1, 1.0, 2e6, "alpha: 2e+06 is above the largest supported order, 1e+06");
  const std::string fractional = " is a fractional order outside [1.01, 32], where the series for fractional orders loses accuracy";
  rejects(0.1, 1.0, 40.5, "alpha: 40.5" + fractional);
  rejects(0.1, 1.0, 1.005, "alpha: 1.005" + fractional);
  // q = 0 and q = 1 take the same checks: no silent 0 for a bad order or σ.
  rejects(0.0, 1.0, 0.5, "alpha: 0.5 is not a finite number > 1");
  rejects(1.0, nan, 2.0, "sigma: must be finite and > 0");
  CHECK(rdp == -7.0);  // written on success only

  // The limits themselves are accepted, and the two forms agree bitwise.
  for (double alpha : {dp::kMinFractionalOrder, 2.0, 31.5, dp::kMaxFractionalOrder, 33.0, 4096.0}) {
    INFO("alpha " << alpha);
    REQUIRE(dp::rdp_subsampled_gaussian(0.01, 1.1, alpha, rdp).ok());
    CHECK(rdp > 0.0);
    CHECK(same_bits(rdp, dp::rdp_subsampled_gaussian(0.01, 1.1, alpha)));
  }
}

TEST_CASE("rdp_subsampled_gaussian at extreme noise: the unsampled bound, not NaN or 0", "[host]") {
  // σ so small that the series' exponents overflow: α/(2σ²), finite or +∞. Before, σ = 1e-154
  // gave RDP 0 at fractional orders (a NaN sum read as "no loss") and NaN at large ones.
  for (double alpha : {1.5, 2.0, 7.3, 64.0, 256.0}) {
    for (double q : {1e-6, 0.01, 0.5}) {
      INFO("alpha " << alpha << " q " << q);
      double rdp = -1.0;
      REQUIRE(dp::rdp_subsampled_gaussian(q, 1e-154, alpha, rdp).ok());
      CHECK(rdp == alpha / (2 * 1e-154 * 1e-154));
      CHECK(rdp > 1e300);
      REQUIRE(dp::rdp_subsampled_gaussian(q, 1e-200, alpha, rdp).ok());
      CHECK(rdp == HUGE_VAL);
      // σ so large that σ²·ln(1/q − 1) overflows: a bound below 1e-290, never NaN.
      REQUIRE(dp::rdp_subsampled_gaussian(q, 1e155, alpha, rdp).ok());
      CHECK((rdp >= 0.0 && rdp < 1e-290));
    }
  }
  // Just inside the series' range it agrees with the bound to rounding (no jump at the switch).
  const double sigma = 4.0 / std::sqrt(2e300) * 1.001;  // (α + 2)²/(2σ²) just below 1e300 at α = 2
  double rdp = 0.0;
  REQUIRE(dp::rdp_subsampled_gaussian(0.01, sigma, 2.0, rdp).ok());
  CHECK(close(rdp, 2.0 / (2 * sigma * sigma), 1e-12));
}

TEST_CASE("a rejected call leaves the accountant unchanged; the next valid call works", "[host]") {
  const double delta = 1e-5, nan = std::nan("");
  dp::RdpAccountant acc;
  REQUIRE(acc.compose(0.01, 1.1, 1000).ok());
  const std::vector<double> orders = acc.orders(), rdp = acc.rdp();
  dp::EpsilonResult improved, classic;
  REQUIRE(acc.epsilon(delta, dp::Conversion::improved, improved).ok());
  REQUIRE(acc.epsilon(delta, dp::Conversion::classic, classic).ok());
  REQUIRE(improved.epsilon > 0.0);
  auto unchanged = [&] {
    CHECK(same_bits(acc.orders(), orders));
    CHECK(same_bits(acc.rdp(), rdp));
    dp::EpsilonResult i, c;
    REQUIRE(acc.epsilon(delta, dp::Conversion::improved, i).ok());
    REQUIRE(acc.epsilon(delta, dp::Conversion::classic, c).ok());
    CHECK(same_bits(i.epsilon, improved.epsilon));
    CHECK(same_bits(i.order, improved.order));
    CHECK(same_bits(c.epsilon, classic.epsilon));
    CHECK(same_bits(c.order, classic.order));
  };
  auto rejected = [&](const deepshock::Status& st, const std::string& argument) {
    INFO(st.to_string());
    CHECK(st.code() == deepshock::StatusCode::invalid_argument);
    CHECK(starts_with(st.message(), argument + ": "));
    unchanged();
  };
  rejected(acc.compose(nan, 1.1, 10), "q");
  rejected(acc.compose(1.5, 1.1, 10), "q");
  rejected(acc.compose(0.01, 0.0, 10), "sigma");
  rejected(acc.compose(0.01, nan, 10), "sigma");
  rejected(acc.compose(0.01, 1.1, -1), "steps");
  rejected(acc.set_orders({}), "orders");
  rejected(acc.set_orders({2.0, 0.5, 3.0}), "orders");
  rejected(acc.set_orders({2.0, nan}), "orders");
  rejected(acc.set_orders({2.0, 40.5}), "orders");  // fractional beyond the series' accuracy
  rejected(acc.set_orders({2.0, 2e6}), "orders");
  // Queries with bad arguments do not disturb it either.
  dp::EpsilonResult r;
  CHECK_FALSE(acc.epsilon(0.0, dp::Conversion::improved, r).ok());
  unchanged();

  // The next valid compose adds to what was there: 1000 + 1000 steps = 2000 steps at once.
  REQUIRE(acc.compose(0.01, 1.1, 1000).ok());
  dp::RdpAccountant once;
  REQUIRE(once.compose(0.01, 1.1, 2000).ok());
  for (std::size_t i = 0; i < acc.rdp().size(); ++i) CHECK(close(acc.rdp()[i], once.rdp()[i], 1e-14));
  REQUIRE(acc.epsilon(delta, dp::Conversion::improved, r).ok());
  CHECK(r.epsilon > improved.epsilon);

  // A composition whose RDP overflows at every order (σ → 0 at q = 1) is +∞, never smaller.
  REQUIRE(acc.compose(1.0, 1e-200, 1).ok());
  for (double v : acc.rdp()) CHECK(v == HUGE_VAL);
  REQUIRE(acc.epsilon(delta, dp::Conversion::improved, r).ok());
  CHECK(r.epsilon == HUGE_VAL);
  CHECK(std::isnan(r.order));

  // Valid custom orders, integers past the fractional limit included, replace and clear.
  REQUIRE(acc.set_orders({1.01, 31.5, 64.0, 1000.0}).ok());
  for (double v : acc.rdp()) CHECK(v == 0.0);
  REQUIRE(acc.compose(0.01, 1.1, 10).ok());
  for (double v : acc.rdp()) CHECK((v > 0.0 && std::isfinite(v)));
}
