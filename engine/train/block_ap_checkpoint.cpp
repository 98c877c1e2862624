// Block-AP's checkpoint (block_ap.h): the trained layers in a packed file beside it, the
// trained norms as tensors and the per-block figures as metadata.
#include <map>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/json_text.h"
#include "engine/io/safetensors.h"
#include "engine/train/block_ap.h"

namespace mcw {

void save_block_ap_checkpoint(const std::string& path, const BlockApResult& r,
                              const std::string& identity) {
  std::vector<const CompressedTensor*> layers;
  nlohmann::json names = nlohmann::json::array(), blocks = nlohmann::json::array();
  for (const CompressedTensor& q : r.quantized) layers.push_back(&q), names.push_back(q.name);
  write_packed_safetensors(path + ".packed", layers);
  std::vector<Tensor> norms;
  for (const auto& [name, t] : r.norms) {
    norms.push_back(t);
    norms.back().set_name(name);
  }
  for (const BlockApBlock& b : r.blocks)
    blocks.push_back({{"layer", b.layer},
                      {"start_val", b.start_val},
                      {"train_loss", b.train_loss},
                      {"val_loss", b.val_loss},
                      {"seconds", b.seconds}});
  write_safetensors(path, norms,
                    {{"mcw.block_ap.identity", identity},
                     {"mcw.block_ap.layers", names.dump()},
                     {"mcw.block_ap.blocks", blocks.dump()}});
}

BlockApResult load_block_ap_checkpoint(const std::string& path, const std::string& identity) {
  const SafetensorsFile f = read_safetensors(path);
  auto meta = [&](const char* key) {
    const auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw Error(path, std::string("not a Block-AP checkpoint (no ") + key + ")");
    return it->second;
  };
  if (meta("mcw.block_ap.identity") != identity)
    throw Error(path, "is the checkpoint of another Block-AP run (model, text or options differ)");
  BlockApResult r;
  try {
    const auto names = parse_json_text(meta("mcw.block_ap.layers"), path, 0,
                                       {.what = "the trained layers' names", .utf8_hint = {}});
    std::map<std::string, CompressedTensor> packed;
    for (CompressedTensor& q : read_packed_safetensors(path + ".packed"))
      packed.emplace(q.name, std::move(q));
    for (const auto& n : names) {
      const auto it = packed.find(n.get<std::string>());
      if (it == packed.end())
        throw Error(path + ".packed", "lacks the trained layer " + n.get<std::string>());
      r.quantized.push_back(std::move(it->second));
    }
    for (const Tensor& t : f.tensors) {
      if (t.dtype() != DType::F32 || t.ndim() != 1)
        throw Error(path, "damaged Block-AP checkpoint: norm " + t.name() + " is not f32 [dim]");
      r.norms.push_back({t.name(), t.f32_copy()});
    }
    for (const auto& j : parse_json_text(meta("mcw.block_ap.blocks"), path, 0,
                                         {.what = "the per-block figures", .utf8_hint = {}})) {
      BlockApBlock b;
      b.layer = j.at("layer"), b.start_val = j.at("start_val"), b.seconds = j.at("seconds");
      b.train_loss = j.at("train_loss").get<std::vector<double>>();
      b.val_loss = j.at("val_loss").get<std::vector<double>>();
      if (b.layer != int64_t(r.blocks.size()))
        throw Error(path, "damaged Block-AP checkpoint: blocks out of order");
      r.blocks.push_back(std::move(b));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("damaged Block-AP checkpoint: ") + e.what());
  }
  return r;
}

}  // namespace mcw
