// The `mcw train --config FILE` description: model dimensions, training settings, corpus
// and output directory, as JSON:
//   { "model":    { "dim": 128, "hidden_dim": 352, "n_layers": 4, "n_heads": 4,
//                   "n_kv_heads": 2, "seq_len": 128, "vocab_size": 256,
//                   "tie_embeddings": true, "rope_theta": 10000, "rms_eps": 1e-5 },
//     "training": { "steps": 2000, "batch": 16, "micro_batches": 1, "lr": 1e-3,
//                   "min_lr": 1e-4, "warmup": 100, "weight_decay": 0.1, "beta1": 0.9,
//                   "beta2": 0.95, "clip": 1.0, "seed": 1, "eval_every": 100,
//                   "eval_windows": 32, "log_every": 10, "init_std": 0.02 },
//     "corpus":   { "dir": "/usr/share/games/fortunes", "eval_fraction": 0.1, "seed": 1,
//                   "include_subdirs": false },
//     "out": "runs/fortunes-1m" }
// Required: model.dim, model.hidden_dim, model.n_layers, model.n_heads, training.steps,
// corpus.dir, out; everything else has the default shown. Relative paths are relative to
// the config file's directory. Unknown keys are errors (they are usually typos).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/model/llama_config.h"
#include "engine/train/trainer.h"

namespace mcw {

struct TrainRunConfig {
  LlamaConfig model;
  TrainOptions train;
  int64_t log_every = 10;
  std::string corpus_dir;
  double eval_fraction = 0.1;
  uint64_t corpus_seed = 1;
  bool include_subdirs = false;
  std::string out_dir;
};

// Throws mcw::Error(path, "key 'training.lr': ...") naming the key and what was expected.
TrainRunConfig parse_train_config(const std::string& path);
// The same from parsed JSON; `path` names the file in errors and anchors relative paths.
TrainRunConfig parse_train_config(const nlohmann::json& doc, const std::string& path);

}  // namespace mcw
