#include "engine/project/project.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/core/error.h"
#include "engine/io/atomic_file.h"

namespace mcw {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

static constexpr uintmax_t kMaxProjectBytes = 16u << 20;  // a project file is a few KB

std::string default_database_path(const std::string& project_file, const std::string& name) {
  std::string stem = name.empty() ? std::string("project") : name;
  for (char& c : stem)
    if (c == '/' || c == '\\' || c == ':' || c == '\0' || (unsigned char)c < 0x20) c = '_';
  const fs::path dir = fs::absolute(fs::path(project_file)).parent_path();
  return (dir / (stem + ".mcwdb")).lexically_normal().string();
}

namespace {

// Reads keys of one JSON object, naming the full key path in every error.
class Reader {
 public:
  Reader(const std::string& file, const json& obj, std::string prefix)
      : file_(file), obj_(obj), prefix_(std::move(prefix)) {}

  const json* find(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  std::string key_name(const char* key) const { return prefix_ + key; }
  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw Error(file_, "key \"" + key_name(key) + "\": " + what);
  }
  void expect(const char* key, const json& v, bool ok, const char* type) const {
    if (!ok) fail(key, std::string("expected ") + type + ", got " + v.type_name());
  }
  const json& require(const char* key) const {
    const json* v = find(key);
    if (!v) throw Error(file_, "missing key \"" + key_name(key) + "\"");
    return *v;
  }
  std::string string(const char* key, bool required) const {
    const json* v = required ? &require(key) : find(key);
    if (!v) return {};
    expect(key, *v, v->is_string(), "a string");
    return v->get<std::string>();
  }
  int64_t integer(const char* key, int64_t fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    expect(key, *v, v->is_number_integer(), "an integer");
    return v->get<int64_t>();
  }
  const json* object(const char* key) const {
    const json* v = find(key);
    if (v) expect(key, *v, v->is_object(), "an object");
    return v;
  }

 private:
  const std::string& file_;
  const json& obj_;
  std::string prefix_;
};

std::string resolve(const fs::path& base, const std::string& stored) {
  if (stored.empty()) return {};
  fs::path p(stored);
  if (p.is_relative()) p = base / p;
  return p.lexically_normal().string();
}

std::string relativize(const fs::path& base, const std::string& abs) {
  if (abs.empty()) return {};
  const fs::path p = fs::absolute(fs::path(abs)).lexically_normal();
  const fs::path rel = p.lexically_relative(base);
  return rel.empty() ? p.generic_string() : rel.generic_string();
}

std::string read_text(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw Error(path, "no such file or directory");
  if (!fs::is_regular_file(st)) throw Error(path, "not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) throw Error(path, "cannot read the file size: " + ec.message());
  if (size > kMaxProjectBytes)
    throw Error(path, "project file is too large (" + std::to_string(size) + " bytes)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// nlohmann's message without its "[json.exception...] parse error at line L, column C: "
// prefix, which repeats what the byte offset already says.
std::string parse_message(const json::parse_error& e) {
  std::string m = e.what();
  const size_t at = m.find("parse error");
  if (at != std::string::npos) {
    const size_t colon = m.find(": ", at);
    if (colon != std::string::npos) m = m.substr(colon + 2);
  }
  return "invalid JSON: " + m;
}

}  // namespace

Project load_project(const std::string& path) {
  const std::string text = read_text(path);
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    const int64_t offset = e.byte > 0 ? int64_t(e.byte) - 1 : 0;
    throw Error(path, parse_message(e), offset);
  } catch (const json::exception& e) {  // a number out of range (1e400) is not a parse_error
    throw Error(path, std::string("invalid JSON: ") + e.what());
  }
  if (!doc.is_object())
    throw Error(path, std::string("expected a JSON object at the top level, got ") +
                          doc.type_name());

  const Reader top(path, doc, "");
  const json& version = top.require("format_version");
  top.expect("format_version", version, version.is_number_integer(), "an integer");
  const int64_t v = version.get<int64_t>();
  if (v > kProjectFormatVersion)
    throw Error(path, "written by a newer MCW (format " + std::to_string(v) +
                          "); this MCW reads up to " + std::to_string(kProjectFormatVersion));
  if (v < 1) top.fail("format_version", "unsupported version " + std::to_string(v));

  const fs::path base = fs::absolute(fs::path(path)).parent_path().lexically_normal();
  Project p;
  p.name = top.string("name", true);
  p.model_path = resolve(base, top.string("model", true));

  if (const json* ds = top.object("datasets")) {
    const Reader r(path, *ds, "datasets.");
    p.calibration_path = resolve(base, r.string("calibration", false));
    p.evaluation_path = resolve(base, r.string("evaluation", false));
  }

  if (const json* recipes = top.find("recipes")) {
    top.expect("recipes", *recipes, recipes->is_array(), "an array");
    for (size_t i = 0; i < recipes->size(); ++i) {
      const std::string key = "recipes[" + std::to_string(i) + "]";
      const json& item = (*recipes)[i];
      if (!item.is_object())
        throw Error(path, "key \"" + key + "\": expected an object, got " + item.type_name());
      const Reader r(path, item, key + ".");
      ProjectRecipe rec;
      rec.name = r.string("name", true);
      const std::string file = r.string("path", false);
      const bool has_inline = r.find("inline") != nullptr;
      if (file.empty() == !has_inline)
        throw Error(path, "key \"" + key + "\": needs exactly one of \"path\" or \"inline\"");
      rec.path = resolve(base, file);
      if (has_inline) rec.inline_text = r.string("inline", true);
      p.recipes.push_back(std::move(rec));
    }
  }

  if (const json* ev = top.object("evaluation")) {
    const Reader r(path, *ev, "evaluation.");
    p.eval.window = r.integer("window", p.eval.window);
    p.eval.stride = r.integer("stride", p.eval.stride);
    p.eval.max_tokens = r.integer("max_tokens", p.eval.max_tokens);
    if (p.eval.window < 2) r.fail("window", "must be at least 2");
    if (p.eval.stride < 1 || p.eval.stride > p.eval.window)
      r.fail("stride", "must be between 1 and the window (" + std::to_string(p.eval.window) +
                           "), got " + std::to_string(p.eval.stride));
    if (p.eval.max_tokens < 0) r.fail("max_tokens", "must not be negative");
  }

  if (const json* cl = top.object("cluster")) {
    const Reader r(path, *cl, "cluster.");
    p.cluster.partition = r.string("partition", false);
    p.cluster.time = r.string("time", false);
    p.cluster.mem = r.string("mem", false);
    p.cluster.gpus = int(r.integer("gpus", 0));
    p.cluster.max_concurrent = int(r.integer("max_concurrent", 0));
    if (p.cluster.gpus < 0 || p.cluster.gpus > 1024) r.fail("gpus", "must be 0 to 1024");
    if (p.cluster.max_concurrent < 0) r.fail("max_concurrent", "must not be negative");
  }

  const std::string db = top.string("database", false);
  p.database_path = db.empty() ? default_database_path(path, p.name) : resolve(base, db);
  return p;
}

void save_project(const Project& p, const std::string& path) {
  const fs::path base = fs::absolute(fs::path(path)).parent_path().lexically_normal();
  json doc = json::object();
  doc["format_version"] = kProjectFormatVersion;
  doc["name"] = p.name;
  doc["model"] = relativize(base, p.model_path);
  doc["datasets"] = {{"calibration", relativize(base, p.calibration_path)},
                     {"evaluation", relativize(base, p.evaluation_path)}};
  json recipes = json::array();
  for (const ProjectRecipe& r : p.recipes) {
    json item = {{"name", r.name}};
    if (r.is_inline())
      item["inline"] = r.inline_text;
    else
      item["path"] = relativize(base, r.path);
    recipes.push_back(std::move(item));
  }
  doc["recipes"] = std::move(recipes);
  doc["evaluation"] = {{"window", p.eval.window},
                       {"stride", p.eval.stride},
                       {"max_tokens", p.eval.max_tokens}};
  doc["database"] = relativize(
      base, p.database_path.empty() ? default_database_path(path, p.name) : p.database_path);
  const SlurmSettings& c = p.cluster;
  if (!c.partition.empty() || !c.time.empty() || !c.mem.empty() || c.gpus || c.max_concurrent)
    doc["cluster"] = {{"partition", c.partition},
                      {"time", c.time},
                      {"mem", c.mem},
                      {"gpus", c.gpus},
                      {"max_concurrent", c.max_concurrent}};

  write_file_atomically(path, doc.dump(2) + "\n");
}

std::vector<ProjectProblem> check_project(const Project& p) {
  std::vector<ProjectProblem> out;
  auto check_file = [&](const std::string& field, const std::string& file, bool dir_ok) {
    std::error_code ec;
    const fs::file_status st = fs::status(file, ec);
    if (ec || !fs::exists(st))
      out.push_back({field, file + ": no such file or directory"});
    else if (fs::is_directory(st) && !dir_ok)
      out.push_back({field, file + ": is a directory, expected a file"});
  };
  if (p.model_path.empty())
    out.push_back({"model", "no model chosen"});
  else
    check_file("model", p.model_path, true);  // a Hugging Face model is a directory
  // An ONNX graph's datasets are OCR sets: folders of images with their labels.
  const bool sets = p.model_path.ends_with(".onnx");
  if (!p.calibration_path.empty()) check_file("calibration", p.calibration_path, sets);
  if (!p.evaluation_path.empty()) check_file("evaluation", p.evaluation_path, sets);
  for (size_t i = 0; i < p.recipes.size(); ++i)
    if (!p.recipes[i].is_inline())
      check_file("recipes[" + std::to_string(i) + "]", p.recipes[i].path, false);
  if (!p.database_path.empty()) {
    const fs::path dir = fs::path(p.database_path).parent_path();
    std::error_code ec;
    if (!dir.empty() && !fs::is_directory(dir, ec))
      out.push_back({"database", dir.string() + ": directory does not exist"});
  }
  return out;
}

}  // namespace mcw
