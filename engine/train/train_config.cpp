#include "engine/train/train_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include "engine/core/error.h"
#include "engine/model/byte_tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace mcw {

namespace {

// One object of the config: typed getters that name the full key in every error, and a
// final check that no key was left unread.
class Section {
 public:
  Section(const json& doc, const std::string& name, const std::string& file, bool required)
      : file_(file), prefix_(name.empty() ? "" : name + ".") {
    const json* j = name.empty() ? &doc : (doc.contains(name) ? &doc[name] : nullptr);
    if (!j) {
      if (required) throw Error(file, "missing section '" + name + "'");
      return;
    }
    if (!j->is_object()) throw Error(file, "key '" + name + "': expected an object");
    j_ = j;
  }

  int64_t integer(const std::string& key, std::optional<int64_t> fallback, int64_t min) {
    const json* v = get(key, fallback.has_value());
    if (!v) return *fallback;
    if (!v->is_number_integer() || v->get<int64_t>() < min)
      fail(key, "expected an integer >= " + std::to_string(min), *v);
    return v->get<int64_t>();
  }
  double number(const std::string& key, std::optional<double> fallback, double min, double max,
                bool min_open = false) {
    const json* v = get(key, fallback.has_value());
    if (!v) return *fallback;
    if (!v->is_number()) fail(key, "expected a number", *v);
    const double x = v->get<double>();
    if (x > max || x < min || (min_open && x == min))
      fail(key, "expected a number in " + std::string(min_open ? "(" : "[") +
                    short_number(min) + ", " + short_number(max) + "]", *v);
    return x;
  }
  bool boolean(const std::string& key, bool fallback) {
    const json* v = get(key, true);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(key, "expected true or false", *v);
    return v->get<bool>();
  }
  std::string string(const std::string& key) {
    const json* v = get(key, false);
    if (!v->is_string() || v->get<std::string>().empty())
      fail(key, "expected a non-empty string", *v);
    return v->get<std::string>();
  }
  void mark_read(const std::string& key) { read_.insert(key); }
  void reject_unknown() const {
    if (!j_) return;
    for (const auto& [k, v] : j_->items())
      if (!read_.count(k)) throw Error(file_, "unknown key '" + prefix_ + k + "'");
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what, const json& v) const {
    throw Error(file_, "key '" + prefix_ + key + "': " + what + ", got " + v.dump());
  }

 private:
  static std::string short_number(double x) {
    if (x == std::numeric_limits<double>::max()) return "inf";
    std::ostringstream s;
    s << x;
    return s.str();
  }
  const json* get(const std::string& key, bool optional) {
    read_.insert(key);
    if (j_ && j_->contains(key)) return &(*j_)[key];
    if (!optional) throw Error(file_, "missing key '" + prefix_ + key + "'");
    return nullptr;
  }

  std::string file_, prefix_;
  const json* j_ = nullptr;
  std::set<std::string> read_;
};

std::string resolve(const std::string& p, const std::string& config_path) {
  const fs::path path(p);
  if (path.is_absolute()) return p;
  return (fs::path(config_path).parent_path() / path).lexically_normal().string();
}

constexpr double kInf = std::numeric_limits<double>::max();

}  // namespace

TrainRunConfig parse_train_config(const json& doc, const std::string& path) {
  if (!doc.is_object()) throw Error(path, "expected a JSON object at the top level");
  TrainRunConfig r;
  Section top(doc, "", path, true), m(doc, "model", path, true), t(doc, "training", path, true);
  Section c(doc, "corpus", path, true);

  LlamaConfig& mc = r.model;
  mc.vocab_size = m.integer("vocab_size", kByteVocabSize, 1);
  if (mc.vocab_size != kByteVocabSize)
    throw Error(path, "key 'model.vocab_size': training tokenizes bytes, so it must be 256, got " +
                          std::to_string(mc.vocab_size));
  mc.dim = m.integer("dim", std::nullopt, 1);
  mc.hidden_dim = m.integer("hidden_dim", std::nullopt, 1);
  mc.n_layers = m.integer("n_layers", std::nullopt, 1);
  mc.n_heads = m.integer("n_heads", std::nullopt, 1);
  mc.n_kv_heads = m.integer("n_kv_heads", mc.n_heads, 1);
  mc.max_seq_len = m.integer("seq_len", 128, 1);
  mc.rope_theta = m.number("rope_theta", 10000.0, 0, kInf, true);
  mc.rms_eps = m.number("rms_eps", 1e-5, 0, 1, true);
  mc.tie_embeddings = m.boolean("tie_embeddings", true);
  if (mc.dim % mc.n_heads)
    throw Error(path, "key 'model.n_heads': " + std::to_string(mc.n_heads) +
                          " heads do not divide model.dim " + std::to_string(mc.dim));
  mc.head_dim = mc.dim / mc.n_heads;
  mc.validate(path);

  TrainOptions& o = r.train;
  o.seq_len = mc.max_seq_len;
  o.steps = t.integer("steps", std::nullopt, 1);
  o.batch = t.integer("batch", 16, 1);
  o.micro_batches = t.integer("micro_batches", 1, 1);
  if (o.batch % o.micro_batches)
    throw Error(path, "key 'training.micro_batches': " + std::to_string(o.micro_batches) +
                          " does not divide training.batch " + std::to_string(o.batch));
  o.lr = t.number("lr", 1e-3, 0, 1, true);
  o.min_lr = t.number("min_lr", std::min(1e-4, o.lr), 0, o.lr);
  o.warmup = t.integer("warmup", std::min<int64_t>(100, o.steps / 10), 0);
  o.adamw.weight_decay = t.number("weight_decay", 0.1, 0, 1);
  o.adamw.beta1 = t.number("beta1", 0.9, 0, 1);
  o.adamw.beta2 = t.number("beta2", 0.95, 0, 1);
  o.adamw.eps = t.number("adam_eps", 1e-8, 0, 1, true);
  o.clip = t.number("clip", 1.0, 0, kInf);
  o.seed = uint64_t(t.integer("seed", 1, 0));
  o.eval_every = t.integer("eval_every", 100, 0);
  o.eval_windows = t.integer("eval_windows", 32, 1);
  o.init_std = t.number("init_std", 0.02, 0, 1, true);
  r.log_every = t.integer("log_every", 10, 1);

  r.corpus_dir = resolve(c.string("dir"), path);
  r.eval_fraction = c.number("eval_fraction", 0.1, 0, 0.9);
  r.corpus_seed = uint64_t(c.integer("seed", 1, 0));
  r.include_subdirs = c.boolean("include_subdirs", false);

  r.out_dir = resolve(top.string("out"), path);
  for (const char* section : {"model", "training", "corpus"}) top.mark_read(section);
  for (const Section* s : {&top, &m, &t, &c}) s->reject_unknown();
  return r;
}

TrainRunConfig parse_train_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open the config file");
  std::stringstream text;
  text << in.rdbuf();
  json doc;
  try {
    doc = json::parse(text.str());
  } catch (const json::parse_error& e) {
    throw Error(path, std::string("invalid JSON: ") + e.what(),
                std::max<int64_t>(0, int64_t(e.byte) - 1));
  } catch (const json::exception& e) {  // a number out of range (1e400) is not a parse_error
    throw Error(path, std::string("invalid JSON: ") + e.what());
  }
  return parse_train_config(doc, path);
}

}  // namespace mcw
