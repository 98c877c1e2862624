// The checkpoint of the GGUF export's GPTQ pass (gguf_gptq.h), so that an export of a real
// model, hours of GPTQ on two cores, goes on after a kill instead of starting over. In its
// directory: each re-quantised weight in a file of its own (its GGUF blocks, written with
// fsync and renamed into place), after every decoder block the saved inputs of the next one,
// and a manifest written last and atomically that names them with the errors measured so
// far. Whatever ends the process, the last manifest names complete files only.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace mcw {

class ActivationStore;
struct GgufGptqError;

class GgufGptqCheckpoint {
 public:
  // `identity`: what the export is (model, types, calibration); a manifest of another is
  // refused. Nothing is read or written yet.
  GgufGptqCheckpoint(std::string dir, nlohmann::json identity);

  struct State {
    int64_t next_block = 0;  // blocks before it are done
    std::string
        hidden_path;  // the saved inputs of next_block (empty when it is 0 or past the last)
    std::map<std::string, Tensor> weights;  // the done layers' blocks, mapped, by HF name
    std::map<std::string, GgufGptqError> errors;
  };
  // The state the directory's manifest records (taken over: later manifests name its
  // files too), or nullopt when it has none. Throws mcw::Error naming the manifest when it
  // is damaged, another export's, or names a file that is missing or of the wrong size.
  std::optional<State> resume();
  // The manifest's blocks done, or nullopt without one: whether there is a stopped export
  // (read without checking it).
  static std::optional<int64_t> blocks_done(const std::string& dir);

  // Writes one re-quantised weight (durably) and returns it mapped back.
  Tensor write_weight(const std::string& hf, const std::vector<std::byte>& blocks, DType type,
                      const Shape& shape);
  // After block `layer`: saves `hidden` (the next block's inputs; not after the last
  // block), then the manifest, then removes the inputs saved for the block before.
  void block_done(int64_t layer, int64_t blocks, const ActivationStore& hidden,
                  const std::map<std::string, GgufGptqError>& errors);

 private:
  std::string path(const std::string& name) const;
  std::string dir_;
  nlohmann::json identity_;
  nlohmann::json weights_ = nlohmann::json::object();  // HF name -> {file, type, shape}
  std::string hidden_;                                 // the file the last manifest names
};

}  // namespace mcw
