// Typed keys of a model's hyper-parameters (config.json, or GGUF metadata under an
// architecture prefix): every error names the file and the key, and says what was expected.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/core/error.h"

namespace mcw {

struct ConfigKeys {
  const nlohmann::ordered_json& obj;
  const std::string& file;
  std::string prefix;

  const nlohmann::ordered_json* find(const std::string& key) const {
    auto it = obj.find(prefix + key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what, const nlohmann::ordered_json& v) const {
    throw Error(file, "key '" + prefix + key + "' must be " + what + ", got " +
                          v.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  }
  int64_t integer(const std::string& key) const {
    const nlohmann::ordered_json* v = find(key);
    if (!v) throw Error(file, "missing key '" + prefix + key + "'");
    if (!v->is_number_integer()) fail(key, "an integer", *v);
    return v->get<int64_t>();
  }
  int64_t integer_or(const std::string& key, int64_t fallback) const {
    return find(key) ? integer(key) : fallback;
  }
  double number_or(const std::string& key, double fallback) const {
    const nlohmann::ordered_json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number()) fail(key, "a number", *v);
    return v->get<double>();
  }
  bool boolean_or(const std::string& key, bool fallback) const {
    const nlohmann::ordered_json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(key, "true or false", *v);
    return v->get<bool>();
  }
  std::string string_or(const std::string& key, const std::string& fallback) const {
    const nlohmann::ordered_json* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) fail(key, "a string", *v);
    return v->get<std::string>();
  }
};

}  // namespace mcw
