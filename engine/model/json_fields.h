// Typed access to fields of a parsed tokenizer.json that turns every wrong or missing
// field into one mcw::Error naming the file and the key path ("model.merges[12]").
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace mcw {

class JsonFields {
 public:
  explicit JsonFields(std::string source) : source_(std::move(source)) {}
  const std::string& source() const { return source_; }

  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  // "key 'value' is not supported"
  [[noreturn]] void unsupported(const std::string& key, const std::string& value,
                                const std::string& note = {}) const;

  // node[name] if node is an object holding it and it is not null, else nullptr.
  static const nlohmann::json* find(const nlohmann::json& node, const char* name);

  const nlohmann::json& object(const nlohmann::json& node, const std::string& key) const;
  const nlohmann::json& array(const nlohmann::json& node, const std::string& key) const;
  std::string string(const nlohmann::json& node, const std::string& key) const;
  int64_t integer(const nlohmann::json& node, const std::string& key) const;

  // Fields of an object: key is the object's own path; name the field.
  std::string string_field(const nlohmann::json& obj, const std::string& key,
                           const char* name) const;
  std::string string_field_or(const nlohmann::json& obj, const std::string& key,
                              const char* name, std::string fallback) const;
  bool bool_field_or(const nlohmann::json& obj, const std::string& key, const char* name,
                     bool fallback) const;
  int64_t int_field_or(const nlohmann::json& obj, const std::string& key, const char* name,
                       int64_t fallback) const;

 private:
  std::string source_;
};

// "key.name", or "name" when key is empty.
std::string json_key(const std::string& key, const std::string& name);

}  // namespace mcw
