// A Phi-3 directory as transformers writes one, from a llama model: q/k/v fused in
// qkv_proj, gate/up in gate_up_proj, model_type phi3 with a sliding window (tests, fuzzing).
#pragma once
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/io/safetensors.h"
#include "engine/model/llama_model.h"
#include "engine/model/llama_tensors.h"

namespace mcw::test {

// Rows of several f32 matrices stacked into one, named `name`.
inline Tensor stacked(const std::vector<const Tensor*>& parts, const std::string& name) {
  std::vector<float> v;
  int64_t rows = 0;
  for (const Tensor* t : parts) {
    v.insert(v.end(), t->as<float>(), t->as<float>() + t->numel());
    rows += t->dim(0);
  }
  return Tensor::from_f32(v, {rows, parts[0]->dim(1)}, name);
}

// `bad_qkv`: layer 1's qkv_proj gets this shape instead (a broken file).
inline void write_phi3(const LlamaModel& m, const std::string& dir, const Shape* bad_qkv = nullptr) {
  std::filesystem::create_directories(dir);
  std::vector<Tensor> ts;
  for (const auto& [name, t] : m.named_tensors()) {
    const BlockTensor* row = find_block_tensor(name);
    if (row && (row->role == BlockRole::Q || row->role == BlockRole::K || row->role == BlockRole::V ||
                row->role == BlockRole::Gate || row->role == BlockRole::Up))
      continue;
    Tensor copy = *t;
    copy.set_name(name);
    ts.push_back(std::move(copy));
  }
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LlamaLayer& L = m.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Tensor qkv = stacked({&L.wq, &L.wk, &L.wv}, p + "self_attn.qkv_proj.weight");
    if (bad_qkv && l == 1) qkv = Tensor::zeros(DType::F32, *bad_qkv, qkv.name());
    ts.push_back(std::move(qkv));
    ts.push_back(stacked({&L.w_gate, &L.w_up}, p + "mlp.gate_up_proj.weight"));
  }
  write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});
  nlohmann::json j = m.cfg.to_hf_config();
  j["architectures"] = {"Phi3ForCausalLM"};
  j["model_type"] = "phi3";
  j["sliding_window"] = 5;
  j.erase("attention_bias"), j.erase("mlp_bias");
  std::ofstream(dir + "/config.json") << j.dump();
}

}  // namespace mcw::test
