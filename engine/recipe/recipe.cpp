#include "engine/recipe/recipe.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "engine/compress/algorithm.h"
#include "engine/core/error.h"
#include "engine/core/sha256.h"
#include "engine/train/recovery.h"

namespace mcw {

using json = nlohmann::json;

namespace {

// Errors carry "line N: " because recipe authors fix files in an editor.
[[noreturn]] void fail(const std::string& source, const YAML::Node& at, const std::string& what) {
  const int line = at.IsDefined() ? at.Mark().line + 1 : 0;
  throw Error(source, (line > 0 ? "line " + std::to_string(line) + ": " : std::string()) + what);
}

// A plain YAML scalar as JSON: true/false, an integer, a number, else a string. Quoted
// scalars stay strings ("4" is not the number 4).
json scalar_json(const YAML::Node& n) {
  const std::string s = n.Scalar();
  if (n.Tag() == "!") return s;
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  char* end = nullptr;
  const long long i = std::strtoll(s.c_str(), &end, 10);
  if (*end == '\0') return i;
  const double d = std::strtod(s.c_str(), &end);
  if (*end == '\0') return d;
  return s;
}

std::string value_text(const json& v) {
  if (!v.is_string()) return v.dump();
  std::string s(1, '\'');  // built in steps: GCC 12 misreports "'" + s + "'" (-Wrestrict)
  s += v.get<std::string>();
  s += '\'';
  return s;
}

std::string allowed_text(const std::vector<json>& allowed) {
  std::string s;
  for (const json& a : allowed) s += (s.empty() ? "" : ", ") + value_text(a);
  return s;
}

json check_param(const std::string& src, const YAML::Node& at, const std::string& where,
                 const ParamSpec& spec, const YAML::Node& node) {
  if (!node.IsScalar()) fail(src, at, where + "key '" + spec.key + "' must be a single value");
  const json v = scalar_json(node);
  const std::string got = value_text(v);
  bool ok = false;
  if (spec.type == "int") ok = v.is_number_integer();
  else if (spec.type == "number") ok = v.is_number();
  else if (spec.type == "bool") ok = v.is_boolean();
  else ok = v.is_string();
  if (!ok) fail(src, node, where + "key '" + spec.key + "' must be " +
                             (spec.type == "int" ? "an integer" : spec.type == "bool" ? "true or false"
                              : spec.type == "number" ? "a number" : "a string") + ", got " + got);
  if (!spec.allowed.empty() && std::find(spec.allowed.begin(), spec.allowed.end(), v) == spec.allowed.end())
    fail(src, node, where + "key '" + spec.key + "': " + got + " is not allowed (allowed: " +
                        allowed_text(spec.allowed) + ")");
  if (spec.min < spec.max && v.is_number() &&
      (v.get<double>() < spec.min || v.get<double>() > spec.max)) {
    std::ostringstream r;
    r << spec.min << " to " << spec.max;
    fail(src, node, where + "key '" + spec.key + "': " + got + " is out of range (" + r.str() + ")");
  }
  return v;
}

std::vector<std::string> string_list(const std::string& src, const std::string& where,
                                     const std::string& key, const YAML::Node& n) {
  std::vector<std::string> out;
  if (n.IsScalar()) return {n.Scalar()};
  if (!n.IsSequence()) fail(src, n, where + "key '" + key + "' must be a pattern or a list of patterns");
  for (const YAML::Node& e : n) {
    if (!e.IsScalar()) fail(src, e, where + "key '" + key + "' must list patterns (strings)");
    out.push_back(e.Scalar());
  }
  return out;
}

void check_pattern(const std::string& src, const YAML::Node& at, const std::string& where,
                   const std::string& p) {
  if (p.rfind("re:", 0) != 0) return;
  try {
    std::regex re(p.substr(3));
  } catch (const std::regex_error& e) {
    fail(src, at, where + "invalid regex '" + p.substr(3) + "': " + e.what());
  }
}

// params[key] from one entry of a mapping checked against `specs`; an unknown key fails
// naming the allowed ones (`extra` first: keys the caller reads itself).
void read_param(const std::string& src, const YAML::Node& key_node, const YAML::Node& value,
                const std::string& where, const std::vector<ParamSpec>& specs,
                const std::string& extra, json& params) {
  const std::string key = key_node.Scalar();
  auto p = std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& ps) { return ps.key == key; });
  if (p == specs.end()) {
    std::string keys = extra;
    for (const ParamSpec& ps : specs) keys += (keys.empty() ? "" : ", ") + ps.key;
    fail(src, key_node, where + "unknown key '" + key + "' (allowed: " + keys + ")");
  }
  params[key] = check_param(src, value, where, *p, value);
}

// Every spec's default where `params` lacks it; a spec without one is required.
void fill_param_defaults(const std::string& src, const YAML::Node& n, const std::string& where,
                         const std::vector<ParamSpec>& specs, json& params) {
  for (const ParamSpec& p : specs) {
    if (params.contains(p.key)) continue;
    if (p.fallback.is_null()) fail(src, n, where + "missing key '" + p.key + "'");
    params[p.key] = p.fallback;
  }
}

json parse_recovery(const std::string& src, const YAML::Node& n) {
  if (!n.IsMap()) fail(src, n, "'recovery' must be a mapping (keys: steps, rank, alpha, ...)");
  json out = json::object();
  // Block-AP has keys of its own; the method picks the list the others are checked against.
  const YAML::Node method = n["method"];
  const auto& params =
      recovery_params(method && method.IsScalar() ? method.Scalar() : std::string("lora"));
  for (const auto& kv : n) read_param(src, kv.first, kv.second, "recovery: ", params, "", out);
  fill_param_defaults(src, n, "recovery: ", params, out);
  return out;
}

json parse_activations(const std::string& src, const YAML::Node& n) {
  if (!n.IsMap()) fail(src, n, "'activations' must be a mapping (keys: bits, symmetric)");
  json out = json::object();
  for (const auto& kv : n)
    read_param(src, kv.first, kv.second, "activations: ", activation_params(), "", out);
  fill_param_defaults(src, n, "activations: ", activation_params(), out);
  return out;
}

RecipeStage parse_stage(const std::string& src, const YAML::Node& n, size_t index) {
  const std::string pos = "stage " + std::to_string(index + 1);
  if (!n.IsMap()) fail(src, n, pos + " must be a mapping with an 'algorithm' key");
  const YAML::Node alg = n["algorithm"];
  if (!alg) fail(src, n, pos + ": missing key 'algorithm'");
  RecipeStage s;
  s.algorithm = alg.Scalar();
  s.line = n.Mark().line + 1;
  const CompressAlgorithm* spec = find_algorithm(s.algorithm);
  if (!spec) {
    std::string names;
    for (const CompressAlgorithm& a : compress_algorithms()) names += (names.empty() ? "" : ", ") + a.name;
    fail(src, alg, pos + ": unknown algorithm '" + s.algorithm + "' (known: " + names + ")");
  }
  const std::string where = pos + " (" + s.algorithm + "): ";
  s.targets = {kDefaultStageTarget};
  for (const auto& kv : n) {
    const std::string key = kv.first.Scalar();
    if (key == "algorithm") continue;
    if (key == "targets" || key == "ignore") {
      auto list = string_list(src, where, key, kv.second);
      for (const std::string& p : list) check_pattern(src, kv.second, where, p);
      (key == "targets" ? s.targets : s.ignore) = std::move(list);
      continue;
    }
    read_param(src, kv.first, kv.second, where, spec->params, "targets, ignore", s.params);
  }
  fill_param_defaults(src, n, where, spec->params, s.params);
  if (s.targets.empty()) fail(src, n, where + "'targets' is empty");
  return s;
}

nlohmann::json parse_prediction(const std::string& src, const YAML::Node& n) {
  if (!n.IsMap()) fail(src, n, "'prediction' must be a mapping");
  nlohmann::json out = nlohmann::json::object();
  for (const auto& kv : n) {
    const std::string key = kv.first.Scalar();
    if (key == "measure" || key == "stages") {
      if (!kv.second.IsScalar()) fail(src, kv.second, "prediction: '" + key + "' must be a string");
      out[key] = kv.second.Scalar();
      continue;
    }
    const auto known = [&](const auto& list) {
      return std::find_if(std::begin(list), std::end(list),
                          [&](const char* k) { return key == k; }) != std::end(list);
    };
    if (!known(kPredictionKeys) && !known(kBudgetKeys)) {
      std::string keys = "measure, stages";
      for (const char* k : kPredictionKeys) keys += std::string(", ") + k;
      for (const char* k : kBudgetKeys) keys += std::string(", ") + k;
      fail(src, kv.first, "prediction: unknown key '" + key + "' (allowed: " + keys + ")");
    }
    const ParamSpec spec{key, "number", nullptr, {}, 0, 0, ""};
    out[key] = check_param(src, kv.second, "prediction: ", spec, kv.second);
  }
  return out;
}

void emit_params(YAML::Emitter& out, const nlohmann::json& params) {
  for (auto& [k, v] : params.items()) {
    out << YAML::Key << k << YAML::Value;
    if (v.is_boolean()) out << v.get<bool>();
    else if (v.is_number_integer()) out << v.get<int64_t>();
    else if (v.is_number()) out << v.get<double>();
    else out << v.get<std::string>();
  }
}

void emit_stages(YAML::Emitter& out, const Recipe& r) {
  out << YAML::BeginSeq;
  for (const RecipeStage& s : r.stages) {
    out << YAML::BeginMap << YAML::Key << "algorithm" << YAML::Value << s.algorithm;
    out << YAML::Key << "targets" << YAML::Value << YAML::Flow << s.targets;
    if (!s.ignore.empty()) out << YAML::Key << "ignore" << YAML::Value << YAML::Flow << s.ignore;
    emit_params(out, s.params);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

}  // namespace

void emit_sections(YAML::Emitter& out, const Recipe& r) {
  for (const auto& [key, section] :
       {std::pair{"activations", &r.activations}, {"recovery", &r.recovery}}) {
    if (section->empty()) continue;
    out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginMap;
    emit_params(out, *section);
    out << YAML::EndMap;
  }
}

const std::vector<ParamSpec>& activation_params() {
  static const std::vector<ParamSpec> specs = {
      {"bits", "int", 8, {4, 8}, 0, 0, "bits of each layer's input codes"},
      {"symmetric",
       "bool",
       false,
       {},
       0,
       0,
       "symmetric int codes around 0 (else unsigned codes with a zero point, onnxruntime's "
       "default for activations)"}};
  return specs;
}

std::string recipe_stages_digest(const Recipe& r) {
  YAML::Emitter out;
  emit_stages(out, r);
  if (!r.recovery.empty() || !r.activations.empty()) {  // recipes without them keep their digests
    out << YAML::BeginMap;
    emit_sections(out, r);
    out << YAML::EndMap;
  }
  Sha256 h;
  h.update(std::string(out.c_str()));
  return to_hex(h.finish()).substr(0, 12);
}

Recipe parse_recipe(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(source, "line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) throw Error(source, "a recipe must be a mapping with a 'stages' list");
  Recipe r;
  r.source = source;
  r.name = std::filesystem::path(source).stem().string();
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    if (key == "name") r.name = kv.second.Scalar();
    else if (key == "description") r.description = kv.second.Scalar();
    else if (key == "calibration") {
      if (!kv.second.IsMap()) fail(source, kv.second, "'calibration' must be a mapping");
      for (const auto& c : kv.second) {
        const std::string ck = c.first.Scalar();
        const ParamSpec spec{ck, "int", nullptr, {}, 1, 1e6, ""};
        if (ck != "windows" && ck != "window")
          fail(source, c.first, "calibration: unknown key '" + ck + "' (allowed: windows, window)");
        r.calibration[ck] = check_param(source, c.second, "calibration: ", spec, c.second);
      }
    } else if (key == "prediction") {
      r.prediction = parse_prediction(source, kv.second);
    } else if (key == "recovery") {
      r.recovery = parse_recovery(source, kv.second);
    } else if (key == "activations") {
      r.activations = parse_activations(source, kv.second);
    } else if (key == "stages") {
      if (!kv.second.IsSequence() || kv.second.size() == 0)
        fail(source, kv.second, "'stages' must be a non-empty list");
      for (size_t i = 0; i < kv.second.size(); ++i)
        r.stages.push_back(parse_stage(source, kv.second[i], i));
    } else {
      fail(source, kv.first,
           "unknown key '" + key +
               "' (allowed: name, description, calibration, prediction, stages, activations, "
               "recovery)");
    }
  }
  if (r.stages.empty()) throw Error(source, "missing key 'stages'");
  return r;
}

Recipe load_recipe(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open recipe");
  std::ostringstream s;
  s << in.rdbuf();
  return parse_recipe(s.str(), path);
}

std::string recipe_to_yaml(const Recipe& r) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << r.name;
  if (!r.description.empty()) out << YAML::Key << "description" << YAML::Value << r.description;
  if (!r.calibration.empty()) {
    out << YAML::Key << "calibration" << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (auto& [k, v] : r.calibration.items()) out << YAML::Key << k << YAML::Value << v.get<int64_t>();
    out << YAML::EndMap;
  }
  if (!r.prediction.empty()) {
    out << YAML::Key << "prediction" << YAML::Value << YAML::Flow << YAML::BeginMap;
    emit_params(out, r.prediction);
    out << YAML::EndMap;
  }
  out << YAML::Key << "stages" << YAML::Value;
  emit_stages(out, r);
  emit_sections(out, r);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

static bool glob_match(const char* p, const char* s) {
  for (; *p; ++p, ++s) {
    if (*p == '*') {
      for (const char* t = s;; ++t) {
        if (glob_match(p + 1, t)) return true;
        if (!*t) return false;
      }
    }
    if (!*s || (*p != '?' && *p != *s)) return false;
  }
  return !*s;
}

bool pattern_matches(const std::string& pattern, const std::string& name) {
  if (pattern.rfind("re:", 0) == 0) return std::regex_search(name, std::regex(pattern.substr(3)));
  return glob_match(pattern.c_str(), name.c_str());
}

std::vector<std::string> stage_tensors(const RecipeStage& s, const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& n : names) {
    auto hit = [&](const std::string& p) { return pattern_matches(p, n); };
    if (std::any_of(s.targets.begin(), s.targets.end(), hit) &&
        std::none_of(s.ignore.begin(), s.ignore.end(), hit))
      out.push_back(n);
  }
  return out;
}

void check_targets(const Recipe& r, const std::vector<std::string>& names) {
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const RecipeStage& s = r.stages[i];
    for (const std::string& t : s.targets)
      if (std::none_of(names.begin(), names.end(), [&](const std::string& n) { return pattern_matches(t, n); }))
        throw Error(r.source, (s.line ? "line " + std::to_string(s.line) + ": " : std::string()) +
                                  "stage " + std::to_string(i + 1) + " (" + s.algorithm +
                                  "): target '" + t + "' matches no tensor of the model");
  }
}

}  // namespace mcw
