// deepshock/lora/peft_import.hpp — import a PEFT LoRA adapter (adapter_config.json +
// adapter_model.safetensors) for one MoE block into the library's HostAdapter layout. Host only;
// needs nlohmann/json (see lora/safetensors.hpp), so deepshock.hpp does not include it.
//
// Two forms of expert adapters are read, as PEFT (0.17+) writes them:
//  * per-expert nn.Linear modules (Mixtral's experts.{e}.w1 / w3 / w2, or gate_proj / up_proj /
//    down_proj): one `<module>.lora_A.weight` [r, in] and `<module>.lora_B.weight` [out, r] per
//    expert and matrix;
//  * fused 3-D expert parameters reached through `target_parameters` (PEFT's ParamWrapper; the
//    layout transformers v5 uses: gate_up_proj [E, 2I, H] with the gate rows first, down_proj
//    [E, H, I]): lora_A [E*r, in] with expert e's rows at e*r .. e*r+r-1 and lora_B [out, E*r] with
//    expert e's column k at k*E + e. The delta is added to the whole gate_up weight before the split,
//    so gate and up share one A_e: the import gives w1 that A, makes w3 alias it
//    (HostAdapter::a_alias) and splits B's rows [0, I) to w1 and [I, 2I) to w3. The keys do not name
//    the parameter: PEFT nests one wrapper per parameter in the module's registration order, so with
//    both targeted the first (gate_up_proj in transformers) is `<fused>base_layer.lora_*` and the
//    second `<fused>lora_*`; with one targeted it is `<fused>lora_*`. Which are targeted is read from
//    the config's target_parameters.
// The shared expert (Linear modules) may be adapted in either case.
//
// Ranks and scalings. PEFT gives each module its own rank and alpha (rank_pattern / alpha_pattern:
// the first key K, in file order, for which the module name matches the regex `(.*\.)?(K)$`; keys
// are supported as plain module-name suffixes, keys with regex syntax are refused, see
// detail::pattern_matches). A
// HostAdapter has one rank R and one scaling s. The import takes R = the largest rank present and
// pads every smaller A with zero rows and B with zero columns (exact: the padded terms add 0), and
// takes s = the config's own scaling (lora_alpha and r, rsLoRA honoured); a module whose scaling
// s_m differs gets B scaled by s_m / s (exact in real arithmetic; one rounding to T per element, as
// any conversion to T). The rank each file tensor shows must equal the config's rank for its module.
//
// Validation. The files are untrusted: every tensor under <root><block> must be one the import
// expects (anything else, e.g. a router adapter, lora biases or DoRA magnitudes, is an error),
// every adapted (matrix, expert) needs both A and B, shapes must be [r, in] / [out, r] with the
// layer's sizes, dtypes F32, F16, BF16 or F64; every error names the tensor or config field.
#pragma once

#include <cmath>
#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/lora/adapter.hpp"
#include "deepshock/lora/host_adapter.hpp"
#include "deepshock/lora/safetensors.hpp"

namespace deepshock::lora {

/// The fields of PEFT's adapter_config.json that decide what a LoRA adapter computes.
struct PeftConfig {
  int r = 8;
  double lora_alpha = 8.0;
  bool use_rslora = false;
  std::vector<std::string> target_modules;  ///< a list, or one entry holding PEFT's full-match regex
  bool target_modules_is_regex = false;     ///< target_modules was given as one string
  std::vector<std::string> target_parameters;
  std::vector<std::pair<std::string, int>> rank_pattern;      ///< in file order (the first match wins)
  std::vector<std::pair<std::string, double>> alpha_pattern;  ///< in file order
  // Variants the importer cannot represent (it rejects an adapter that uses them).
  bool use_dora = false;
  bool lora_bias = false;
  bool fan_in_fan_out = false;

  /// Parses the text of adapter_config.json into `out`; unknown fields are ignored, the ones above
  /// must have PEFT's types (null meaning "not set" where PEFT allows it).
  static Status parse(std::string_view json_text, PeftConfig& out);

  /// The rank and alpha PEFT gives the module called `module` (its name in the base model, e.g.
  /// "model.layers.0.mlp.experts.3.w2").
  Status rank_for(const std::string& module, int& rank) const;
  Status alpha_for(const std::string& module, double& alpha) const;
  /// The scaling PEFT applies to that module.
  Status scaling_for(const std::string& module, double& s) const;
};

/// Where one MoE block's adapter tensors are: key = root + block + module path + ".lora_A.weight".
/// The module name PEFT matches rank_pattern / alpha_pattern against is block + module path.
struct PeftExpertNames {
  std::string root = "base_model.model.";  ///< PEFT's wrapper prefix of every key
  std::string block;                       ///< the block's path in the model, e.g. "model.layers.0.mlp."
  std::string expert = "experts.{e}.";     ///< per-expert module path; {e} is the expert index
  std::string gate = "w1", up = "w3", down = "w2";
  std::string shared = "shared_expert.";  ///< the shared expert's path; empty: the block has none
  std::string shared_gate = "gate_proj", shared_up = "up_proj", shared_down = "down_proj";
  std::string fused = "experts.";  ///< the module holding the fused 3-D expert parameters
  std::string fused_gate_up = "gate_up_proj", fused_down = "down_proj";
  bool fused_gate_up_first = true;  ///< gate_up_proj is registered before down_proj (transformers)
};

/// Imports the adapter of one MoE block (`experts` routed experts, hidden size `hidden`,
/// intermediate `intermediate`, shared expert intermediate `shared_intermediate`, 0: none) into
/// `out` (replaced; left empty on error). T: the layer's activation type (float, bf16, fp16).
template <class T>
Status import_peft_experts(const PeftConfig& config, const SafeTensors& file, const PeftExpertNames& names, int experts, int hidden,
                           int intermediate, int shared_intermediate, HostAdapter<T>& out);

// ---- implementation ----------------------------------------------------------------------------

namespace detail {

/// PEFT's get_pattern_key test, `re.match(r"(.*\.)?(KEY)$", name)`, for keys without regex
/// syntax: `name` is KEY or ends in "." + KEY (a '.' in KEY is taken literally where the regex would
/// take any character; module names have no other character there). Keys with regex syntax are
/// refused: the config is untrusted and a backtracking matcher (std::regex) takes exponential time
/// on keys such as "(a+)+$", so supporting them needs a linear-time matcher (not written yet).
inline Status pattern_matches(const std::string& key, const std::string& name, bool& match) {
  match = false;
  if (key.empty() || key.find_first_of("\\^$*+?()[]{}|") != std::string::npos)
    return Status::unsupported(
        "adapter_config.json: pattern key '" + key.substr(0, 64) +
        "' is empty or uses regex syntax; only module-name suffixes (e.g. \"experts.0.w2\", \"down_proj\") are supported");
  match = name == key || (name.size() > key.size() && name.compare(name.size() - key.size(), key.size(), key) == 0 &&
                          name[name.size() - key.size() - 1] == '.');
  return Status::success();
}

using ordered_json = nlohmann::ordered_json;

inline bool json_int(const ordered_json& j, long long& v) {
  if (j.is_number_unsigned()) {
    if (j.get<unsigned long long>() > 1000000000ull) return false;
    v = static_cast<long long>(j.get<unsigned long long>());
    return true;
  }
  if (j.is_number_integer()) {
    v = j.get<long long>();
    return true;
  }
  return false;
}

inline Status config_strings(const ordered_json& j, const char* field, std::vector<std::string>& out, bool allow_string, bool* was_string) {
  out.clear();
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) return Status::success();
  const std::string what = std::string("adapter_config.json: ") + field;
  if (allow_string && it->is_string()) {
    out.push_back(it->get<std::string>());
    if (was_string) *was_string = true;
    return Status::success();
  }
  if (!it->is_array())
    return Status::invalid_argument(what,
                                    allow_string ? "must be a string, a list of strings or null" : "must be a list of strings or null");
  for (const auto& s : *it) {
    if (!s.is_string()) return Status::invalid_argument(what, "holds an entry that is not a string");
    out.push_back(s.get<std::string>());
  }
  return Status::success();
}

inline Status config_bool(const ordered_json& j, const char* field, bool& out) {
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) return Status::success();
  if (!it->is_boolean()) return Status::invalid_argument(std::string("adapter_config.json: ") + field, "must be true or false");
  out = it->get<bool>();
  return Status::success();
}

}  // namespace detail

inline Status PeftConfig::parse(std::string_view json_text, PeftConfig& out) {
  out = PeftConfig{};
  detail::ordered_json j;
  try {
    // ordered_json keeps the file's key order: rank_pattern / alpha_pattern use the first match.
    j = detail::ordered_json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  } catch (const std::exception& e) {
    return Status::invalid_argument("adapter_config.json", std::string("cannot be parsed: ") + e.what());
  }
  if (j.is_discarded()) return Status::invalid_argument("adapter_config.json", "not valid JSON");
  if (!j.is_object()) return Status::invalid_argument("adapter_config.json", "not a JSON object");
  PeftConfig c;
  if (const auto t = j.find("peft_type"); t != j.end() && !t->is_null()) {
    if (!t->is_string()) return Status::invalid_argument("adapter_config.json: peft_type", "must be a string");
    if (t->get<std::string>() != "LORA")
      return Status::unsupported("adapter_config.json: peft_type is '" + t->get<std::string>() + "'; only LORA adapters are imported");
  }
  const auto r = j.find("r");
  long long rv = 0;
  if (r == j.end()) return Status::invalid_argument("adapter_config.json: r", "missing");
  if (!detail::json_int(*r, rv)) return Status::invalid_argument("adapter_config.json: r", "must be an integer");
  if (rv < 1 || rv > 1000000) return Status::invalid_argument("adapter_config.json: r", "must be at least 1, got " + std::to_string(rv));
  c.r = static_cast<int>(rv);
  const auto a = j.find("lora_alpha");
  if (a == j.end()) return Status::invalid_argument("adapter_config.json: lora_alpha", "missing");
  if (!a->is_number() || !std::isfinite(a->get<double>()))
    return Status::invalid_argument("adapter_config.json: lora_alpha", "must be a finite number");
  c.lora_alpha = a->get<double>();
  DEEPSHOCK_RETURN_IF_ERROR(detail::config_bool(j, "use_rslora", c.use_rslora));
  DEEPSHOCK_RETURN_IF_ERROR(detail::config_bool(j, "use_dora", c.use_dora));
  DEEPSHOCK_RETURN_IF_ERROR(detail::config_bool(j, "lora_bias", c.lora_bias));
  DEEPSHOCK_RETURN_IF_ERROR(detail::config_bool(j, "fan_in_fan_out", c.fan_in_fan_out));
  DEEPSHOCK_RETURN_IF_ERROR(detail::config_strings(j, "target_modules", c.target_modules, true, &c.target_modules_is_regex));
  DEEPSHOCK_RETURN_IF_ERROR(detail::config_strings(j, "target_parameters", c.target_parameters, false, nullptr));
  if (const auto p = j.find("rank_pattern"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) return Status::invalid_argument("adapter_config.json: rank_pattern", "must be an object or null");
    for (const auto& [k, v] : p->items()) {
      long long x = 0;
      if (!detail::json_int(v, x) || x < 1 || x > 1000000)
        return Status::invalid_argument("adapter_config.json: rank_pattern." + k, "must be a positive integer");
      c.rank_pattern.emplace_back(k, static_cast<int>(x));
    }
  }
  if (const auto p = j.find("alpha_pattern"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) return Status::invalid_argument("adapter_config.json: alpha_pattern", "must be an object or null");
    for (const auto& [k, v] : p->items()) {
      if (!v.is_number() || !std::isfinite(v.get<double>()))
        return Status::invalid_argument("adapter_config.json: alpha_pattern." + k, "must be a finite number");
      c.alpha_pattern.emplace_back(k, v.get<double>());
    }
  }
  out = std::move(c);
  return Status::success();
}

namespace detail {
/// The value of the first pattern (in file order) that matches `module`, else `fallback`.
template <class V>
inline Status first_match(const std::vector<std::pair<std::string, V>>& patterns, const std::string& module, V fallback, V& out) {
  out = fallback;
  for (const auto& [key, value] : patterns) {
    bool m = false;
    DEEPSHOCK_RETURN_IF_ERROR(pattern_matches(key, module, m));
    if (m) {
      out = value;
      break;
    }
  }
  return Status::success();
}
}  // namespace detail

inline Status PeftConfig::rank_for(const std::string& module, int& rank) const {
  return detail::first_match(rank_pattern, module, r, rank);
}

inline Status PeftConfig::alpha_for(const std::string& module, double& alpha) const {
  return detail::first_match(alpha_pattern, module, lora_alpha, alpha);
}

inline Status PeftConfig::scaling_for(const std::string& module, double& s) const {
  int rank = 0;
  double alpha = 0;
  DEEPSHOCK_RETURN_IF_ERROR(rank_for(module, rank));
  DEEPSHOCK_RETURN_IF_ERROR(alpha_for(module, alpha));
  s = use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / rank;
  return Status::success();
}

namespace detail {

/// One expected tensor: which matrix (or fused parameter), which expert, A or B.
struct PeftSlot {
  int matrix = 0;  ///< quant::Matrix index; for a fused slot: 0 = gate_up, 2 = down
  int expert = 0;  ///< -1 for a fused slot
  bool is_b = false;
  bool fused = false;
};

/// One adapted (matrix, expert) read from the file, before padding: A [r, in], B [out, r] as
/// double, with the scaling PEFT gives it.
struct PeftPiece {
  const TensorInfo* a = nullptr;
  const TensorInfo* b = nullptr;
};

inline Status check_float_tensor(const TensorInfo& t) {
  if (t.dtype != StDtype::F32 && t.dtype != StDtype::F16 && t.dtype != StDtype::BF16 && t.dtype != StDtype::F64)
    return Status::invalid_argument("tensor '" + t.name + "'.dtype",
                                    std::string("is ") + dtype_name(t.dtype) + "; LoRA weights must be F32, F16, BF16 or F64");
  return Status::success();
}

inline std::string shape_string(const TensorInfo& t) {
  std::string s = "[";
  for (std::size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

inline Status check_2d(const TensorInfo& t, long long rows, long long cols, const char* what) {
  if (t.shape.size() != 2 || (rows >= 0 && t.shape[0] != static_cast<std::uint64_t>(rows)) ||
      (cols >= 0 && t.shape[1] != static_cast<std::uint64_t>(cols)))
    return Status::invalid_argument("tensor '" + t.name + "'.shape", "is " + shape_string(t) + ", expected " + what + " [" +
                                                                         (rows >= 0 ? std::to_string(rows) : std::string("r")) + ", " +
                                                                         (cols >= 0 ? std::to_string(cols) : std::string("r")) + "]");
  return Status::success();
}

inline std::string trim_dot(const std::string& s) { return !s.empty() && s.back() == '.' ? s.substr(0, s.size() - 1) : s; }

inline std::string expert_path(const std::string& pattern, int e) {
  std::string s = pattern;
  const auto at = s.find("{e}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(e));
  return s;
}

}  // namespace detail

template <class T>
Status import_peft_experts(const PeftConfig& config, const SafeTensors& file, const PeftExpertNames& names, int experts, int hidden,
                           int intermediate, int shared_intermediate, HostAdapter<T>& out) {
  out = HostAdapter<T>{};
  if (experts < 1 || experts > 65536) return Status::invalid_argument("experts", "must be between 1 and 65536");
  if (hidden < 1 || intermediate < 1 || shared_intermediate < 0 || hidden > (1 << 20) || intermediate > (1 << 20) ||
      shared_intermediate > (1 << 20))
    return Status::invalid_argument("hidden / intermediate / shared_intermediate", "sizes out of range");
  if (names.expert.find("{e}") == std::string::npos) return Status::invalid_argument("names.expert", "must contain {e}");
  if (config.use_dora) return Status::unsupported("adapter_config.json: use_dora is true; DoRA adapters are not imported");
  if (config.lora_bias) return Status::unsupported("adapter_config.json: lora_bias is true; LoRA biases are not imported");
  if (config.fan_in_fan_out) return Status::unsupported("adapter_config.json: fan_in_fan_out is true (Conv1D layers); not imported");

  using detail::PeftSlot;
  const std::string base = names.root + names.block;
  std::map<std::string, PeftSlot> expected;
  const std::string mat_names[kMatrices] = {names.gate, names.up, names.down, names.shared_gate, names.shared_up, names.shared_down};
  // Module names (PEFT's pattern keys) of every (matrix, expert), and the tensors expected for them.
  auto module_of = [&](int m, int e) {
    return m < 3 ? names.block + detail::expert_path(names.expert, e) + mat_names[m] : names.block + names.shared + mat_names[m];
  };
  for (int m = 0; m < kMatrices; ++m) {
    if (m >= 3 && (names.shared.empty() || shared_intermediate == 0)) continue;
    const int count = m < 3 ? experts : 1;
    for (int e = 0; e < count; ++e) {
      const std::string key = names.root + module_of(m, e);
      expected[key + ".lora_A.weight"] = {m, e, false, false};
      expected[key + ".lora_B.weight"] = {m, e, true, false};
    }
  }
  // Fused parameters: which are targeted decides the wrappers' nesting (see the file comment).
  const std::string fused_module = names.block + detail::trim_dot(names.fused);
  auto targeted = [&](const std::string& param) {
    const std::string key = fused_module + "." + param;
    for (const auto& t : config.target_parameters)
      if (key == t ||
          (key.size() > t.size() && key.compare(key.size() - t.size(), t.size(), t) == 0 && key[key.size() - t.size() - 1] == '.'))
        return true;
    return false;
  };
  const bool fused_gu = targeted(names.fused_gate_up), fused_dn = targeted(names.fused_down);
  std::string fused_key[3];  // [0]: gate_up's key stem, [2]: down's
  if (fused_gu && fused_dn) {
    fused_key[names.fused_gate_up_first ? 0 : 2] = base + names.fused + "base_layer.";
    fused_key[names.fused_gate_up_first ? 2 : 0] = base + names.fused;
  } else if (fused_gu) {
    fused_key[0] = base + names.fused;
  } else if (fused_dn) {
    fused_key[2] = base + names.fused;
  }
  for (int f : {0, 2})
    if (!fused_key[f].empty()) {
      expected[fused_key[f] + "lora_A.weight"] = {f, -1, false, true};
      expected[fused_key[f] + "lora_B.weight"] = {f, -1, true, true};
    }

  // Every tensor under the block must be an expected one.
  std::vector<std::vector<detail::PeftPiece>> pieces(kMatrices);
  for (int m = 0; m < kMatrices; ++m) pieces[m].resize(m < 3 ? experts : 1);
  detail::PeftPiece fused_piece[3];
  bool any = false;
  for (const TensorInfo& t : file.tensors()) {
    if (t.name.compare(0, base.size(), base) != 0) continue;
    const auto it = expected.find(t.name);
    if (it == expected.end())
      return Status::invalid_argument("tensor '" + t.name + "'",
                                      "is under the block '" + base + "' but is not a LoRA A or B of an expert matrix it has");
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_float_tensor(t));
    const PeftSlot& s = it->second;
    detail::PeftPiece& p = s.fused ? fused_piece[s.matrix] : pieces[s.matrix][s.expert];
    (s.is_b ? p.b : p.a) = &t;
    any = true;
  }
  if (!any) return Status::invalid_argument("adapter_model.safetensors", "holds no LoRA tensor under '" + base + "'");

  double s_ref = config.use_rslora ? config.lora_alpha / std::sqrt(static_cast<double>(config.r)) : config.lora_alpha / config.r;
  if (!std::isfinite(s_ref) || s_ref == 0.0)
    return Status::invalid_argument("adapter_config.json: lora_alpha", "gives a zero or non-finite scaling");

  // Pass 1: shapes, ranks and scalings; R = the largest rank.
  struct Plan {
    int rank = 0;
    double scale = 1.0;  // s_m / s_ref, folded into B
  };
  std::vector<std::vector<Plan>> plan(kMatrices);
  Plan fused_plan[3];
  int R = 0;
  auto check_pair = [&](const detail::PeftPiece& p, const std::string& a_name, const std::string& b_name, long long in, long long out_rows,
                        long long rank_div, const std::string& module, Plan& pl) -> Status {
    if (p.a == nullptr) return Status::invalid_argument("tensor '" + a_name + "'", "is missing (its lora_B is present)");
    if (p.b == nullptr) return Status::invalid_argument("tensor '" + b_name + "'", "is missing (its lora_A is present)");
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_2d(*p.a, -1, in, "lora_A"));
    const std::uint64_t rows = p.a->shape[0];
    if (rows == 0 || rows % static_cast<std::uint64_t>(rank_div) != 0 ||
        rows / static_cast<std::uint64_t>(rank_div) > static_cast<std::uint64_t>(kMaxRank))
      return Status::invalid_argument("tensor '" + p.a->name + "'.shape",
                                      "is " + detail::shape_string(*p.a) + ": its rows must be a positive multiple of " +
                                          std::to_string(rank_div) + " giving a rank of at most " + std::to_string(kMaxRank));
    const int r = static_cast<int>(rows / static_cast<std::uint64_t>(rank_div));
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_2d(*p.b, out_rows, static_cast<long long>(rows), "lora_B"));
    int want = 0;
    DEEPSHOCK_RETURN_IF_ERROR(config.rank_for(module, want));
    if (want != r)
      return Status::invalid_argument("tensor '" + p.a->name + "'.shape", "shows rank " + std::to_string(r) +
                                                                              " but adapter_config.json gives module '" + module +
                                                                              "' rank " + std::to_string(want) + " (r / rank_pattern)");
    double s = 0;
    DEEPSHOCK_RETURN_IF_ERROR(config.scaling_for(module, s));
    if (!std::isfinite(s)) return Status::invalid_argument("adapter_config.json", "gives module '" + module + "' a non-finite scaling");
    pl.rank = r;
    pl.scale = s / s_ref;
    R = std::max(R, r);
    return Status::success();
  };
  for (int m = 0; m < kMatrices; ++m) {
    plan[m].resize(pieces[m].size());
    bool some = false, all = true;
    for (const auto& p : pieces[m]) {
      some = some || p.a || p.b;
      all = all && p.a && p.b;
    }
    if (!some) continue;
    const int fm = m == 1 ? 0 : m;  // w3's fused source is gate_up
    if (m < 3 && (fused_piece[fm].a || fused_piece[fm].b))
      return Status::invalid_argument("adapter_model.safetensors",
                                      "matrix '" + mat_names[m] + "' is adapted both per expert and as a fused parameter");
    long long in = 0, outn = 0;
    matrix_shape(static_cast<quant::Matrix>(m), hidden, intermediate, shared_intermediate, in, outn);
    for (int e = 0; e < static_cast<int>(pieces[m].size()); ++e) {
      const std::string stem = names.root + module_of(m, e);
      if (!all && !pieces[m][e].a && !pieces[m][e].b)
        return Status::invalid_argument("tensor '" + stem + ".lora_A.weight'",
                                        "is missing: other experts adapt this matrix, so every expert must (or none)");
      DEEPSHOCK_RETURN_IF_ERROR(
          check_pair(pieces[m][e], stem + ".lora_A.weight", stem + ".lora_B.weight", in, outn, 1, module_of(m, e), plan[m][e]));
    }
  }
  for (int f : {0, 2}) {
    const auto& p = fused_piece[f];
    if (!p.a && !p.b) continue;
    const std::string param = f == 0 ? names.fused_gate_up : names.fused_down;
    const long long in = f == 0 ? hidden : intermediate, outn = f == 0 ? 2LL * intermediate : hidden;
    DEEPSHOCK_RETURN_IF_ERROR(check_pair(p, fused_key[f] + "lora_A.weight", fused_key[f] + "lora_B.weight", in, outn, experts,
                                         fused_module + "." + param, fused_plan[f]));
  }

  // Pass 2: copy into the padded [E, R, in] / [E, out, R] layout, B scaled by s_m / s_ref.
  HostAdapter<T> ad;
  ad.rank = R;
  ad.scaling = static_cast<float>(s_ref);
  const auto zero = static_cast<T>(0.0f);
  std::vector<double> va, vb;
  for (int m = 0; m < kMatrices; ++m) {
    if (plan[m].empty() || plan[m][0].rank == 0) continue;
    long long in = 0, outn = 0;
    matrix_shape(static_cast<quant::Matrix>(m), hidden, intermediate, shared_intermediate, in, outn);
    const std::size_t E = pieces[m].size();
    ad.a[m].assign(E * R * in, zero);
    ad.b[m].assign(E * outn * R, zero);
    for (std::size_t e = 0; e < E; ++e) {
      const int r = plan[m][e].rank;
      DEEPSHOCK_RETURN_IF_ERROR(file.read_f64(*pieces[m][e].a, va));
      DEEPSHOCK_RETURN_IF_ERROR(file.read_f64(*pieces[m][e].b, vb));
      for (long long k = 0; k < r; ++k)
        for (long long i = 0; i < in; ++i) ad.a[m][(e * R + k) * in + i] = static_cast<T>(static_cast<float>(va[k * in + i]));
      for (long long o = 0; o < outn; ++o)
        for (long long k = 0; k < r; ++k)
          ad.b[m][(e * outn + o) * R + k] = static_cast<T>(static_cast<float>(vb[o * r + k] * plan[m][e].scale));
    }
  }
  const std::size_t E = static_cast<std::size_t>(experts);
  for (int f : {0, 2}) {
    if (fused_plan[f].rank == 0) continue;
    const int r = fused_plan[f].rank;
    const long long in = f == 0 ? hidden : intermediate, I = intermediate;
    DEEPSHOCK_RETURN_IF_ERROR(file.read_f64(*fused_piece[f].a, va));
    DEEPSHOCK_RETURN_IF_ERROR(file.read_f64(*fused_piece[f].b, vb));
    // A [E*r, in] is already [E, r, in]; pad each expert's rows to R.
    ad.a[f].assign(E * R * in, zero);
    for (std::size_t e = 0; e < E; ++e)
      for (long long k = 0; k < r; ++k)
        for (long long i = 0; i < in; ++i) ad.a[f][(e * R + k) * in + i] = static_cast<T>(static_cast<float>(va[(e * r + k) * in + i]));
    // B [out, E*r], expert e's column k at k*E + e; gate_up's rows split [0, I) -> w1, [I, 2I) -> w3.
    const long long cols = static_cast<long long>(E) * r;
    auto fill_b = [&](int m, long long row0, long long rows) {
      ad.b[m].assign(E * rows * R, zero);
      for (std::size_t e = 0; e < E; ++e)
        for (long long o = 0; o < rows; ++o)
          for (long long k = 0; k < r; ++k)
            ad.b[m][(e * rows + o) * R + k] = static_cast<T>(static_cast<float>(
                vb[(row0 + o) * cols + k * static_cast<long long>(E) + static_cast<long long>(e)] * fused_plan[f].scale));
    };
    if (f == 0) {
      fill_b(0, 0, I);
      fill_b(1, I, I);
      ad.a_alias[1] = 0;
    } else {
      fill_b(2, 0, hidden);
    }
  }
  out = std::move(ad);
  return Status::success();
}

}  // namespace deepshock::lora
