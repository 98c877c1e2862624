#include "engine/export/gguf_gptq_checkpoint.h"

#include <filesystem>

#include "engine/compress/activation_store.h"
#include "engine/core/error.h"
#include "engine/core/mapped_file.h"
#include "engine/export/gguf_gptq.h"
#include "engine/io/atomic_file.h"
#include "engine/io/checkpoint_manifest.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace mcw {
namespace {

constexpr const char* kManifest = kCheckpointManifest;
constexpr int kVersion = 1;

json error_json(const GgufGptqError& e) {
  return {{"type", dtype_name(e.type)},
          {"diff", e.diff},
          {"ref", e.ref},
          {"out_diff", e.out_diff},
          {"out_ref", e.out_ref},
          {"baseline_out_diff", e.baseline_out_diff},
          {"percdamp", e.percdamp}};
}

DType dtype_of(const json& v, const std::string& manifest) {
  const std::optional<DType> t = dtype_from_name(v.get<std::string>());
  if (!t) throw Error(manifest, "names an unknown dtype: " + v.get<std::string>());
  return *t;
}

GgufGptqError error_from(const json& j, const std::string& manifest) {
  GgufGptqError e;
  e.type = dtype_of(j.at("type"), manifest);
  e.diff = j.at("diff"), e.ref = j.at("ref"), e.out_diff = j.at("out_diff");
  e.out_ref = j.at("out_ref"), e.baseline_out_diff = j.at("baseline_out_diff");
  e.percdamp = j.at("percdamp");
  return e;
}

}  // namespace

GgufGptqCheckpoint::GgufGptqCheckpoint(std::string dir, json identity)
    : dir_(std::move(dir)), identity_(std::move(identity)) {}

std::string GgufGptqCheckpoint::path(const std::string& name) const {
  return (fs::path(dir_) / name).string();
}

std::optional<int64_t> GgufGptqCheckpoint::blocks_done(const std::string& dir) {
  const std::string file = (fs::path(dir) / kManifest).string();
  if (!fs::exists(file)) return std::nullopt;
  const json m = read_checkpoint_manifest(file, kVersion);
  return m.value("next_block", int64_t(0));
}

std::optional<GgufGptqCheckpoint::State> GgufGptqCheckpoint::resume() {
  const std::string manifest = path(kManifest);
  if (!fs::exists(manifest)) return std::nullopt;
  const json m = read_checkpoint_manifest(manifest, kVersion);
  check_checkpoint_identity(dir_, identity_, m.value("identity", json()));
  State s;
  try {
    s.next_block = m.at("next_block").get<int64_t>();
    if (const std::string h = checked_file_name(manifest, m.at("hidden")); !h.empty())
      s.hidden_path = path(h), hidden_ = h;
    for (const auto& [hf, w] : m.at("weights").items()) {
      const std::string file = path(checked_file_name(manifest, w.at("file")));
      const DType type = dtype_of(w.at("type"), manifest);
      const Shape shape = w.at("shape").get<Shape>();
      if (shape.size() != 2 || shape[0] < 1 || shape[1] < 1)
        throw Error(manifest, "names a weight of a bad shape: " + hf);
      const auto f = MappedFile::open(file);
      uint64_t count = 0;
      const bool overflow = __builtin_mul_overflow(uint64_t(shape[0]), uint64_t(shape[1]), &count);
      const std::optional<uint64_t> bytes = overflow ? std::nullopt : dtype_bytes(type, count);
      if (!bytes || f->size() != *bytes)
        throw Error(file, "is not the blocks its checkpoint names (truncated or another shape)");
      s.weights.emplace(hf, Tensor::view(type, shape, f->data(), f->size(), f, hf));
      weights_[hf] = w;
    }
    for (const auto& [hf, e] : m.at("errors").items())
      s.errors.emplace(hf, error_from(e, manifest));
  } catch (const json::exception& e) {
    throw Error(manifest, std::string("unreadable checkpoint: ") + e.what());
  }
  return s;
}

Tensor GgufGptqCheckpoint::write_weight(const std::string& hf, const std::vector<std::byte>& blocks,
                                        DType type, const Shape& shape) {
  const std::string name = hf + ".blocks";
  AtomicFile f(path(name));  // fsync'ed before any manifest names it
  f.write(blocks.data(), blocks.size());
  f.commit();
  weights_[hf] = {{"file", name}, {"type", dtype_name(type)}, {"shape", shape}};
  const auto mapped = MappedFile::open(path(name));
  return Tensor::view(type, shape, mapped->data(), mapped->size(), mapped, hf);
}

void GgufGptqCheckpoint::block_done(int64_t layer, int64_t blocks, const ActivationStore& hidden,
                                    const std::map<std::string, GgufGptqError>& errors) {
  const std::string old = hidden_;
  hidden_.clear();
  if (layer + 1 < blocks) {
    hidden_ = ".hidden-" + std::to_string(layer + 1) + ".bin";
    hidden.save(path(hidden_));
  }
  json m;
  m["version"] = kVersion;
  m["identity"] = identity_;
  m["next_block"] = layer + 1;
  m["blocks"] = blocks;
  m["hidden"] = hidden_;
  m["weights"] = weights_;
  json e = json::object();
  for (const auto& [hf, err] : errors) e[hf] = error_json(err);
  m["errors"] = e;
  write_file_atomically(path(kManifest), m.dump(1));
  if (!old.empty() && old != hidden_) fs::remove(path(old));
}

}  // namespace mcw
