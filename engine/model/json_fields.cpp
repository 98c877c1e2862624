#include "engine/model/json_fields.h"

#include "engine/core/error.h"

namespace mcw {

using nlohmann::json;

std::string json_key(const std::string& key, const std::string& name) {
  return key.empty() ? name : key + "." + name;
}

void JsonFields::fail(const std::string& key, const std::string& message) const {
  throw Error(source_, key + ": " + message);
}

void JsonFields::unsupported(const std::string& key, const std::string& value,
                             const std::string& note) const {
  throw Error(source_, key + " '" + value + "' is not supported" + note);
}

const json* JsonFields::find(const json& node, const char* name) {
  if (!node.is_object()) return nullptr;
  auto it = node.find(name);
  if (it == node.end() || it->is_null()) return nullptr;
  return &*it;
}

const json& JsonFields::object(const json& node, const std::string& key) const {
  if (!node.is_object()) fail(key, std::string("expected an object, found ") + node.type_name());
  return node;
}

const json& JsonFields::array(const json& node, const std::string& key) const {
  if (!node.is_array()) fail(key, std::string("expected an array, found ") + node.type_name());
  return node;
}

std::string JsonFields::string(const json& node, const std::string& key) const {
  if (!node.is_string()) fail(key, std::string("expected a string, found ") + node.type_name());
  return node.get<std::string>();
}

int64_t JsonFields::integer(const json& node, const std::string& key) const {
  if (!node.is_number_integer()) {
    fail(key, std::string("expected an integer, found ") + node.type_name());
  }
  if (node.is_number_unsigned() && node.get<uint64_t>() > uint64_t(INT64_MAX)) {
    fail(key, "integer out of range");
  }
  return node.get<int64_t>();
}

std::string JsonFields::string_field(const json& obj, const std::string& key,
                                     const char* name) const {
  const json* v = find(obj, name);
  if (!v) fail(json_key(key, name), "missing");
  return string(*v, json_key(key, name));
}

std::string JsonFields::string_field_or(const json& obj, const std::string& key, const char* name,
                                        std::string fallback) const {
  const json* v = find(obj, name);
  return v ? string(*v, json_key(key, name)) : fallback;
}

bool JsonFields::bool_field_or(const json& obj, const std::string& key, const char* name,
                               bool fallback) const {
  const json* v = find(obj, name);
  if (!v) return fallback;
  if (!v->is_boolean()) {
    fail(json_key(key, name), std::string("expected true or false, found ") + v->type_name());
  }
  return v->get<bool>();
}

int64_t JsonFields::int_field_or(const json& obj, const std::string& key, const char* name,
                                 int64_t fallback) const {
  const json* v = find(obj, name);
  return v ? integer(*v, json_key(key, name)) : fallback;
}

}  // namespace mcw
