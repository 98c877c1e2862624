// StreamedLlamaWriter's checkpoints: after every resumable block, a manifest that names the
// file holding each block as it stands, the saved inputs of the next block and every
// compressed layer so far (its accounting, and the checkpoint file holding its payload
// while a later stage still has to write it). The manifest is written last and
// atomically, so whatever ends the process, the last manifest names complete files only;
// files it no longer names are removed after it is in place.
#include <filesystem>
#include <set>

#include "engine/compress/activation_store.h"
#include "engine/core/error.h"
#include "engine/export/packed_safetensors.h"
#include "engine/export/streamed_llama_writer.h"
#include "engine/io/atomic_file.h"
#include "engine/io/checkpoint_manifest.h"
#include "engine/core/mapped_file.h"
#include "engine/io/safetensors.h"
#include "engine/model/llama_tensors.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace mcw {

namespace {

constexpr const char* kManifest = kCheckpointManifest;
constexpr int kCheckpointVersion = 1;

std::string base_name(const std::string& p) { return p.empty() ? p : fs::path(p).filename().string(); }

std::string checked_name(const std::string& dir, const json& v) {
  return checked_file_name((fs::path(dir) / kManifest).string(), v);
}

}  // namespace

std::string CompressCheckpoint::describe() const {
  return "stage " + std::to_string(std::min(stage + 1, stages)) + "/" + std::to_string(stages) + ", " +
         (stage >= stages ? "all blocks done"
                          : std::to_string(next_block) + " of " + std::to_string(blocks) + " blocks done");
}

void StreamedLlamaWriter::write_checkpoint(const BlockDone& d, const CompressionResult& r) {
  const int64_t n = r.model.cfg.n_layers;
  const bool stage_done = d.layer + 1 == n;
  if (!hidden_file_.empty()) garbage_.push_back(hidden_file_), hidden_file_.clear();
  if (d.hidden && !stage_done) {
    hidden_file_ = path(".hidden-" + std::to_string(d.stage) + "-" + std::to_string(d.layer) + ".bin");
    d.hidden->save(hidden_file_);
  }
  json m;
  m["version"] = kCheckpointVersion;
  m["identity"] = identity_;
  m["stage"] = stage_done ? d.stage + 1 : d.stage;
  m["stages"] = d.stages;
  m["next_block"] = stage_done ? 0 : d.layer + 1;
  m["blocks"] = n;
  m["hidden"] = base_name(hidden_file_);
  const LlamaConfig& c = r.model.cfg;
  m["shape"] = {{"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"hidden_dim", c.hidden_dim},
                {"o_bias", c.o_bias},   {"down_bias", c.down_bias},   {"blocks", json::array()}};
  for (const BlockShape& b : c.block_shapes)
    m["shape"]["blocks"].push_back({b.n_heads, b.n_kv_heads, b.hidden_dim});
  m["block_files"] = json::array();
  for (const std::string& f : block_file_) m["block_files"].push_back(base_name(f));
  m["act_int8"] = json::array();
  for (const LlamaLayer& L : r.model.layers) m["act_int8"].push_back(L.act_int8);
  m["packed_parts"] = json::array();
  for (const std::string& p : packed_parts_) m["packed_parts"].push_back(base_name(p));
  m["weight_map"] = weight_map_;
  m["total_bytes"] = total_bytes_;
  m["layers"] = json::array();
  for (const CompressedLayer& l : r.layers) {
    const auto it = payload_of_.find(l.tensor.name);
    m["layers"].push_back({{"name", l.tensor.name}, {"algorithm", l.algorithm},
                           {"relative_error", l.relative_error}, {"on_activations", l.error_on_activations},
                           {"storage_bits", l.storage_bits}, {"bits_per_weight", l.bits_per_weight},
                           {"scheme", l.scheme}, {"payload", it == payload_of_.end() ? "" : base_name(it->second)}});
  }
  write_file_atomically(path(kManifest), m.dump(1) + "\n");
  checkpointed_ = true;
  collect_garbage();
}

void StreamedLlamaWriter::collect_garbage() {
  std::set<std::string> live(block_file_.begin(), block_file_.end());
  for (const auto& [name, file] : payload_of_) live.insert(file);
  live.insert(hidden_file_);
  std::vector<std::string> keep;
  for (const std::string& f : garbage_)
    if (live.count(f)) keep.push_back(f);
    else fs::remove(f);
  garbage_ = std::move(keep);
}

void StreamedLlamaWriter::remove_checkpoint() {
  std::error_code ec;
  fs::remove(path(kManifest), ec);
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with(".stage") || n.starts_with(".hidden-")) fs::remove(e.path(), ec);
  }
  block_file_.clear(), garbage_.clear(), payload_of_.clear(), hidden_file_.clear();
  checkpointed_ = false;
}

static json read_manifest(const std::string& file) {
  return read_checkpoint_manifest(file, kCheckpointVersion);
}

// What a parsed manifest says of itself.
static CompressCheckpoint summary(const json& m, const std::string& file) {
  try {
    CompressCheckpoint c;
    c.identity = m.at("identity");
    c.stage = m.at("stage").get<size_t>(), c.stages = m.at("stages").get<size_t>();
    c.next_block = m.at("next_block").get<int64_t>(), c.blocks = m.at("blocks").get<int64_t>();
    return c;
  } catch (const json::exception& e) {
    throw Error(file, std::string("unreadable checkpoint: ") + e.what());
  }
}

std::optional<CompressCheckpoint> StreamedLlamaWriter::read_checkpoint(const std::string& dir) {
  const std::string file = (fs::path(dir) / kManifest).string();
  if (!fs::exists(file)) return std::nullopt;
  return summary(read_manifest(file), file);
}

ResumePoint StreamedLlamaWriter::resume() {
  const std::string file = path(kManifest);
  if (!fs::exists(file)) throw Error(dir_, "holds no checkpoint to resume from");
  const json m = read_manifest(file);  // read once: what is checked is what is restored
  const CompressCheckpoint c = summary(m, file);
  check_checkpoint_identity(dir_, identity_, c.identity);
  ResumePoint p;
  p.stage = c.stage, p.next_block = c.next_block;
  try {
    if (const std::string h = checked_name(dir_, m.at("hidden")); !h.empty()) p.hidden_path = path(h);
  } catch (const json::exception& e) {
    throw Error(file, std::string("unreadable checkpoint: ") + e.what());
  }
  p.restore = [this, m](CompressionResult& r) { restore(r, m); };
  return p;
}

void StreamedLlamaWriter::restore(CompressionResult& r, const json& m) {
  const std::string manifest = path(kManifest);
  try {
    LlamaConfig& c = r.model.cfg;
    const json& s = m.at("shape");
    // The widths come from the checkpoint (a FLAP stage's are known only after it ran, its
    // reshape leaves the widths before it): no wider than the recipe's stages leave them.
    LlamaConfig shaped = c;
    shaped.n_heads = s.at("n_heads").get<int64_t>(),
    shaped.n_kv_heads = s.at("n_kv_heads").get<int64_t>();
    shaped.hidden_dim = s.at("hidden_dim").get<int64_t>();
    std::vector<BlockShape> blocks;
    for (const json& b : s.value("blocks", json::array()))
      blocks.push_back({b.at(0).get<int64_t>(), b.at(1).get<int64_t>(), b.at(2).get<int64_t>()});
    shaped.set_block_shapes(std::move(blocks));
    if (m.at("blocks").get<int64_t>() != c.n_layers || shaped.n_heads > c.n_heads ||
        shaped.n_kv_heads > c.n_kv_heads || shaped.hidden_dim > c.hidden_dim)
      throw Error(manifest, "its model shape does not match the model and recipe");
    shaped.validate(manifest);
    c = std::move(shaped);
    c.o_bias = s.at("o_bias").get<bool>(), c.down_bias = s.at("down_bias").get<bool>();
    std::map<std::string, Tensor*> slots;
    for (auto& [n, t] : r.model.named_tensors()) slots[n] = t;

    block_file_.assign(size_t(c.n_layers), std::string());
    const json& files = m.at("block_files");
    for (int64_t l = 0; l < c.n_layers && l < int64_t(files.size()); ++l) {
      const std::string name = checked_name(dir_, files[size_t(l)]);
      if (name.empty()) continue;
      block_file_[size_t(l)] = path(name);
      const std::string prefix = "model.layers." + std::to_string(l) + ".";
      SafetensorsFile f = read_safetensors(path(name));
      std::set<std::string> found;
      for (Tensor& t : hf_unfused(c, std::move(f.tensors))) {
        const std::string tn = t.name();
        const auto it = slots.find(tn);
        if (it == slots.end() || !tn.starts_with(prefix)) continue;  // HF's zero biases
        const BlockTensor* row = find_block_tensor(tn);
        if (!row || t.shape() != block_tensor_shape(c, *row, l))
          throw Error(path(name), tn + " has the wrong shape for this model");
        // Matrices stay views of the file; vectors are owned, as block_done left them.
        *it->second = t.ndim() == 2 ? std::move(t) : t.f32_copy();
        found.insert(tn);
      }
      for (const auto& [n, t] : slots)
        if (n.starts_with(prefix) && !found.count(n)) throw Error(path(name), "lacks " + n);
    }
    const json& acts = m.at("act_int8");
    for (size_t l = 0; l < r.model.layers.size() && l < acts.size(); ++l)
      r.model.layers[l].act_int8 = acts[l].get<uint8_t>();

    std::map<std::string, std::vector<CompressedTensor>> payloads;  // by file
    r.layers.clear();
    for (const json& j : m.at("layers")) {
      CompressedLayer l;
      l.tensor.name = j.at("name").get<std::string>();
      if (const std::string p = checked_name(dir_, j.at("payload")); !p.empty()) {
        auto [it, fresh] = payloads.try_emplace(path(p));
        if (fresh) it->second = read_packed_safetensors(path(p));
        bool got = false;
        for (const CompressedTensor& t : it->second)
          if (t.name == l.tensor.name) l.tensor = t, got = true;
        if (!got) throw Error(path(p), "lacks the compressed layer " + l.tensor.name);
        payload_of_[l.tensor.name] = path(p);
      }
      l.algorithm = j.at("algorithm").get<std::string>();
      l.relative_error = j.at("relative_error").get<double>();
      l.error_on_activations = j.at("on_activations").get<bool>();
      l.storage_bits = j.at("storage_bits").get<uint64_t>();
      l.bits_per_weight = j.at("bits_per_weight").get<double>();
      l.scheme = j.at("scheme").get<std::string>();
      r.layers.push_back(std::move(l));
    }
    packed_parts_.clear();
    for (const json& p : m.at("packed_parts")) packed_parts_.push_back(path(checked_name(dir_, p)));
    weight_map_ = m.at("weight_map").get<std::map<std::string, std::string>>();
    total_bytes_ = m.at("total_bytes").get<uint64_t>();
    if (const std::string h = checked_name(dir_, m.at("hidden")); !h.empty()) hidden_file_ = path(h);
    checkpointed_ = true;
  } catch (const json::exception& e) {
    throw Error(manifest, std::string("unreadable checkpoint: ") + e.what());
  }
}

}  // namespace mcw
