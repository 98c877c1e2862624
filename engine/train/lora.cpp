#include "engine/train/lora.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/json_text.h"
#include "engine/io/safetensors.h"
#include "engine/kernels/gemm.h"

namespace mcw {

namespace {

constexpr const char* kPeftPrefix = "base_model.model.";
constexpr const char* kAdapterWeights = "adapter_model.safetensors";
constexpr const char* kAdapterConfig = "adapter_config.json";

std::string module_of(const std::string& weight_name) {
  const std::string suffix = ".weight";
  return weight_name.size() > suffix.size() &&
                 weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) == 0
             ? weight_name.substr(0, weight_name.size() - suffix.size())
             : weight_name;
}

// The last component of a module name: what PEFT's target_modules lists ("q_proj").
std::string leaf_of(const std::string& module) {
  const size_t dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

const Tensor* find_named(const LlamaModel& m, const std::string& name) {
  for (const auto& [n, t] : m.named_tensors())
    if (n == name) return t;
  return nullptr;
}

std::string read_small_file(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open");
  std::string text;
  text.resize(limit + 1);
  in.read(text.data(), std::streamsize(text.size()));
  text.resize(size_t(in.gcount()));
  if (text.size() > limit) throw Error(path, "larger than " + std::to_string(limit) + " bytes");
  return text;
}

}  // namespace

const char* lora_scaling_name(LoraScaling s) { return s == LoraScaling::Rora ? "rora" : "lora"; }

LoraScaling parse_lora_scaling(const std::string& text, const std::string& what) {
  if (text == "lora") return LoraScaling::Lora;
  if (text == "rora") return LoraScaling::Rora;
  throw Error(what, "scaling '" + text + "' is neither lora (alpha/r) nor rora (alpha/sqrt(r))");
}

double LoraAdapters::scale() const {
  const double r = double(rank);
  return scaling == LoraScaling::Rora ? alpha / std::sqrt(r) : alpha / r;
}

int64_t LoraAdapters::parameter_count() const {
  int64_t n = 0;
  for (const LoraAdapter& a : adapters) n += a.a.numel() + a.b.numel();
  return n;
}

LoraAdapters init_lora(const LlamaModel& model, const std::vector<std::string>& names, int64_t rank,
                       double alpha, LoraScaling scaling, uint64_t seed) {
  if (!(alpha > 0) || !std::isfinite(alpha))
    throw Error("", "LoRA alpha must be a positive number");
  LoraAdapters out;
  out.rank = rank, out.alpha = alpha, out.scaling = scaling;
  std::mt19937_64 rng(seed);
  for (const std::string& name : names) {
    const Tensor* w = find_named(model, name);
    if (!w || w->ndim() != 2) throw Error("", "the model has no linear weight " + name);
    const int64_t rows = w->dim(0), cols = w->dim(1);
    if (rank < 1 || rank > std::min(rows, cols))
      throw Error("", "LoRA rank " + std::to_string(rank) + " does not fit " + name + " [" +
                          std::to_string(rows) + ", " + std::to_string(cols) + "]");
    LoraAdapter a{name, Tensor::zeros(DType::F32, {rank, cols}),
                  Tensor::zeros(DType::F32, {rows, rank})};
    const double bound = 1.0 / std::sqrt(double(cols));
    std::uniform_real_distribution<double> u(-bound, bound);
    float* pa = a.a.mutable_as<float>();
    for (int64_t i = 0; i < a.a.numel(); ++i) pa[i] = float(u(rng));
    out.adapters.push_back(std::move(a));
  }
  return out;
}

Tensor merge_lora(const Tensor& frozen, const LoraAdapter& adapter, double scale) {
  const int64_t rows = frozen.dim(0), cols = frozen.dim(1), r = adapter.a.dim(0);
  Tensor merged = frozen.f32_copy();  // decoded straight into the copy, any dtype
  merged.set_name(adapter.name);
  float* m = merged.mutable_as<float>();
  std::vector<float> sb(size_t(rows * r));
  const float* b = adapter.b.as<float>();
  for (size_t i = 0; i < sb.size(); ++i) sb[i] = float(scale) * b[i];
  matmul(sb.data(), adapter.a.as<float>(), m, rows, cols, r, /*accumulate=*/true);
  return merged;
}

void lora_gradients(const LoraAdapter& adapter, double scale, const Tensor& dmerged, Tensor& da,
                    Tensor& db) {
  const int64_t rows = dmerged.dim(0), cols = dmerged.dim(1), r = adapter.a.dim(0);
  std::vector<float> ga(size_t(r * cols)), gb(size_t(rows * r));
  matmul_wt(dmerged.as<float>(), adapter.a.as<float>(), gb.data(), rows, r, cols);  // dW'·Aᵀ
  matmul_at(adapter.b.as<float>(), dmerged.as<float>(), ga.data(), r, cols, rows);  // Bᵀ·dW'
  float* pa = da.mutable_as<float>();
  float* pb = db.mutable_as<float>();
  for (size_t i = 0; i < ga.size(); ++i) pa[i] += float(scale) * ga[i];
  for (size_t i = 0; i < gb.size(); ++i) pb[i] += float(scale) * gb[i];
}

void lora_gradients_from(const LoraAdapter& adapter, double scale, const float* x, const float* dy,
                         int64_t rows, Tensor& da, Tensor& db) {
  const int64_t out = adapter.b.dim(0), in = adapter.a.dim(1), r = adapter.a.dim(0);
  std::vector<float> u(size_t(rows * r)), v(size_t(rows * r)), ga(size_t(r * in)),
      gb(size_t(out * r));
  matmul_wt(x, adapter.a.as<float>(), u.data(), rows, r, in);  // x·Aᵀ
  matmul(dy, adapter.b.as<float>(), v.data(), rows, r, out);   // dy·B
  matmul_at(dy, u.data(), gb.data(), out, r, rows);            // dyᵀ·u
  matmul_at(v.data(), x, ga.data(), r, in, rows);              // vᵀ·x
  float* pa = da.mutable_as<float>();
  float* pb = db.mutable_as<float>();
  for (size_t i = 0; i < ga.size(); ++i) pa[i] += float(scale) * ga[i];
  for (size_t i = 0; i < gb.size(); ++i) pb[i] += float(scale) * gb[i];
}

void check_adapter_fits(const Tensor* w, const LoraAdapter& a, const std::string& source) {
  if (!w || w->ndim() != 2) throw Error(source, "the model has no linear " + printable(a.name));
  if (a.a.dim(1) != w->dim(1) || a.b.dim(0) != w->dim(0))
    throw Error(source, printable(a.name) + ": the adapter's shapes do not fit the weight " +
                            std::to_string(w->dim(0)) + " x " + std::to_string(w->dim(1)));
}

void apply_lora(LlamaModel& model, const LoraAdapters& adapters, const std::string& source) {
  for (const LoraAdapter& a : adapters.adapters) {
    Tensor* w = nullptr;
    for (auto& [n, t] : model.named_tensors())
      if (n == a.name) w = t;
    check_adapter_fits(w, a, source);
    *w = merge_lora(*w, a, adapters.scale());
  }
}

void save_lora_peft(const std::string& dir, const LoraAdapters& adapters,
                    const std::string& base_model) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir, "cannot create the adapter directory: " + ec.message());
  std::vector<Tensor> tensors;
  std::set<std::string> leaves;
  for (const LoraAdapter& a : adapters.adapters) {
    const std::string module = module_of(a.name);
    leaves.insert(leaf_of(module));
    Tensor ta = a.a, tb = a.b;
    ta.set_name(kPeftPrefix + module + ".lora_A.weight");
    tb.set_name(kPeftPrefix + module + ".lora_B.weight");
    tensors.push_back(std::move(ta));
    tensors.push_back(std::move(tb));
  }
  write_safetensors((std::filesystem::path(dir) / kAdapterWeights).string(), tensors,
                    {{"format", "pt"}});
  nlohmann::ordered_json cfg;
  cfg["peft_type"] = "LORA";
  cfg["task_type"] = "CAUSAL_LM";
  cfg["base_model_name_or_path"] = base_model;
  cfg["r"] = adapters.rank;
  cfg["lora_alpha"] = adapters.alpha;
  cfg["use_rslora"] = adapters.scaling == LoraScaling::Rora;
  cfg["lora_dropout"] = 0.0;
  cfg["bias"] = "none";
  cfg["fan_in_fan_out"] = false;
  cfg["target_modules"] = std::vector<std::string>(leaves.begin(), leaves.end());
  cfg["inference_mode"] = true;
  write_file_atomically((std::filesystem::path(dir) / kAdapterConfig).string(), cfg.dump(2) + "\n");
}

LoraAdapters load_lora_peft(const std::string& dir) {
  const std::string cfg_path = (std::filesystem::path(dir) / kAdapterConfig).string();
  const auto cfg = parse_json_text(read_small_file(cfg_path, 1 << 20), cfg_path, 0,
                                   {.what = kAdapterConfig, .utf8_hint = {}});
  LoraAdapters out;
  try {  // a key of the wrong type is a damaged file, not a crash
    auto field = [&](const char* key) -> const nlohmann::ordered_json& {
      if (!cfg.is_object() || !cfg.contains(key))
        throw Error(cfg_path, std::string("no '") + key + "'");
      return cfg[key];
    };
    if (field("peft_type") != "LORA") throw Error(cfg_path, "peft_type is not LORA");
    if (cfg.value("use_dora", false)) throw Error(cfg_path, "DoRA adapters are not supported");
    if (cfg.value("bias", std::string("none")) != "none")
      throw Error(cfg_path, "adapters with biases are not supported");
    if (cfg.value("fan_in_fan_out", false))
      throw Error(cfg_path, "fan_in_fan_out (Conv1D) adapters are not supported");
    if (!field("r").is_number_integer() || !field("lora_alpha").is_number())
      throw Error(cfg_path, "r must be an integer and lora_alpha a number");
    out.rank = field("r").get<int64_t>();
    out.alpha = field("lora_alpha").get<double>();
    out.scaling = cfg.value("use_rslora", false) ? LoraScaling::Rora : LoraScaling::Lora;
    if (out.rank < 1 || !(out.alpha > 0))
      throw Error(cfg_path, "r and lora_alpha must be positive");
    if (cfg.contains("rank_pattern") && !cfg["rank_pattern"].empty())
      throw Error(cfg_path, "per-module ranks (rank_pattern) are not supported");
  } catch (const nlohmann::json::exception& e) {
    throw Error(cfg_path, std::string("unreadable adapter config: ") + e.what());
  }
  const std::string st_path = (std::filesystem::path(dir) / kAdapterWeights).string();
  const SafetensorsFile file = read_safetensors(st_path);
  std::map<std::string, std::pair<const Tensor*, const Tensor*>> parts;  // module -> (A, B)
  const std::string prefix = kPeftPrefix;
  for (const Tensor& t : file.tensors) {
    const std::string& n = t.name();
    auto ends = [&](const std::string& s) {
      return n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    const bool is_a = ends(".lora_A.weight"), is_b = ends(".lora_B.weight");
    if (n.rfind(prefix, 0) != 0 || !(is_a || is_b))
      throw Error(st_path, "tensor '" + printable(n) + "' is not a LoRA A/B weight");
    const std::string module = n.substr(prefix.size(), n.size() - prefix.size() - 14);
    (is_a ? parts[module].first : parts[module].second) = &t;
  }
  for (const auto& [module, ab] : parts) {
    const auto [a, b] = ab;
    if (!a || !b)
      throw Error(st_path, "module " + printable(module) + " lacks its lora_" + (a ? "B" : "A"));
    if (a->ndim() != 2 || b->ndim() != 2 || a->dim(0) != out.rank || b->dim(1) != out.rank)
      throw Error(st_path,
                  "module " + printable(module) + " is not of rank " + std::to_string(out.rank));
    out.adapters.push_back({module + ".weight", a->f32_copy(), b->f32_copy()});
  }
  return out;
}

}  // namespace mcw
