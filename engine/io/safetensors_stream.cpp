#include "engine/io/safetensors_stream.h"

#include <nlohmann/json.hpp>
#include <set>

#include "engine/core/error.h"
#include "engine/io/json_text.h"

namespace mcw {

namespace {

using Json = nlohmann::ordered_json;

std::string quoted(const std::string& name) { return "tensor '" + printable(name) + "'"; }

uint64_t entry_bytes(const std::string& path, const SafetensorsEntry& e) {
  if (is_block_type(e.dtype))
    throw Error(path, quoted(e.name) + ": " + std::string(dtype_name(e.dtype)) +
                          " is a block type, not a safetensors dtype");
  const auto numel = checked_numel(e.shape);
  const auto bytes = numel ? dtype_bytes(e.dtype, *numel) : std::nullopt;
  if (!bytes) throw Error(path, quoted(e.name) + ": shape " + shape_string(e.shape) + " overflows");
  return *bytes;
}

}  // namespace

std::string safetensors_header(const std::string& path,
                               const std::vector<SafetensorsEntry>& entries,
                               const std::map<std::string, std::string>& metadata) {
  // Assembled entry by entry as write_safetensors does: inserting into one JSON object
  // would search its keys each time, quadratic in the tensor count.
  std::string text = "{";
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [key, value] : metadata) {
      if (find_invalid_utf8(key) || find_invalid_utf8(value))
        throw Error(path, "__metadata__ '" + printable(key) + "' is not valid UTF-8");
      meta[key] = value;
    }
    text += "\"__metadata__\":" + meta.dump();
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    if (e.name == "__metadata__" || !names.insert(e.name).second)
      throw Error(path, quoted(e.name) + ": name is reserved or used twice");
    if (find_invalid_utf8(e.name)) throw Error(path, quoted(e.name) + ": name is not valid UTF-8");
    const uint64_t bytes = entry_bytes(path, e);
    Json entry = Json::object();
    entry["dtype"] = std::string(dtype_name(e.dtype));
    entry["shape"] = Json::array();
    for (int64_t d : e.shape) entry["shape"].push_back(d);
    entry["data_offsets"] = Json::array({offset, offset + bytes});
    if (text.size() > 1) text += ',';
    text += Json(e.name).dump() + ":" + entry.dump();
    offset += bytes;
  }
  text += '}';
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

SafetensorsStreamWriter::SafetensorsStreamWriter(std::string path,
                                                 const std::vector<SafetensorsEntry>& entries,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(path), file_(std::move(path)) {
  const std::string text = safetensors_header(path_, entries, metadata);
  for (const SafetensorsEntry& e : entries) data_bytes_ += entry_bytes(path_, e);
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
  file_.write(len, sizeof len);
  file_.write(text.data(), text.size());
}

void SafetensorsStreamWriter::write(const void* data, size_t n) {
  if (n > data_bytes_ - written_)
    throw Error(path_, "internal: " + std::to_string(written_ + n) +
                           " data bytes written, the header declares " +
                           std::to_string(data_bytes_));
  file_.write(data, n);
  written_ += n;
}

void SafetensorsStreamWriter::commit() {
  if (written_ != data_bytes_)
    throw Error(path_, "internal: " + std::to_string(written_) +
                           " data bytes written, the header declares " +
                           std::to_string(data_bytes_));
  file_.commit();
}

}  // namespace mcw
