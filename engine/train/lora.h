// Low-rank adapters on frozen linear weights (LoRA, Hu et al. 2021): W' = W + s·B·A with
// A [r, in], B [out, r], B = 0 at the start so that training begins at the frozen model.
// The scale s is LoRA's α/r or RoRA's α/√r (Liu et al. 2025; rsLoRA's, which PEFT calls
// use_rslora), which keeps adapters of larger rank from under-training.
//
// MCW trains adapters through the merged weight: the forward runs W' and the backward hands
// each linear's x and dy over (llama_frozen_backward); since W' is linear in B·A,
// dL/dB = s·(dL/dW')·Aᵀ and dL/dA = s·Bᵀ·(dL/dW') with dL/dW' = dyᵀ·x, which
// lora_gradients_from takes at rank-sized cost without forming dL/dW' (lora_gradients does
// form it: the reference the tests check the other against). At any size the merged
// weights exist one block at a time (streamed_student.h); lora_lm.h runs adapters kept
// apart.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/model/llama_model.h"

namespace mcw {

enum class LoraScaling { Lora, Rora };         // α/r, α/√r
const char* lora_scaling_name(LoraScaling s);  // "lora", "rora"
// "lora" or "rora"; throws mcw::Error naming `what` (a flag, a file) otherwise.
LoraScaling parse_lora_scaling(const std::string& text, const std::string& what);

struct LoraAdapter {
  std::string name;  // the frozen linear's HF name ("model.layers.0.self_attn.q_proj.weight")
  Tensor a, b;       // f32 [rank, in], [out, rank]
};

struct LoraAdapters {
  int64_t rank = 8;
  double alpha = 16;
  LoraScaling scaling = LoraScaling::Lora;
  std::vector<LoraAdapter> adapters;  // in model order

  double scale() const;  // α/r or α/√r
  int64_t parameter_count() const;
};

// Adapters for `names` (linears of `model`), initialised as PEFT does: A uniform in
// ±1/√in (Kaiming-uniform with a = √5), B zero. Throws mcw::Error for a rank outside
// 1..min(out, in) of some linear, or a name the model does not have.
LoraAdapters init_lora(const LlamaModel& model, const std::vector<std::string>& names, int64_t rank,
                       double alpha, LoraScaling scaling, uint64_t seed);

// W' = W + s·B·A: the adapter merged into its frozen weight [out, in] (any dtype a weight is
// stored in), as a new f32 tensor named as the adapter's weight.
Tensor merge_lora(const Tensor& frozen, const LoraAdapter& adapter, double scale);

// Adds s·(dL/dW')·Aᵀ into db and s·Bᵀ·(dL/dW') into da, from the gradient `dmerged` of
// the loss with respect to the merged weight.
void lora_gradients(const LoraAdapter& adapter, double scale, const Tensor& dmerged, Tensor& da,
                    Tensor& db);

// The same from the linear's input x [rows, in] and output gradient dy [rows, out] of the
// backward pass, without forming dL/dW′ (llama_frozen_backward): with u = x·Aᵀ and
// v = dy·B, dB += s·dyᵀ·u and dA += s·vᵀ·x, rank-sized products.
void lora_gradients_from(const LoraAdapter& adapter, double scale, const float* x, const float* dy,
                         int64_t rows, Tensor& da, Tensor& db);

// Throws mcw::Error naming `source` and the module when `w` (the weight `adapter` names, as
// found in a model; null when the model has none) is missing, not a matrix, or not of the
// adapter's shapes.
void check_adapter_fits(const Tensor* w, const LoraAdapter& adapter, const std::string& source);

// Every adapter merged into `model` (W ← W + s·B·A, the weight made f32): what a PEFT
// adapter does to the model it was trained on. Throws mcw::Error naming `source` and the
// module for one the model lacks or whose shapes do not fit.
void apply_lora(LlamaModel& model, const LoraAdapters& adapters, const std::string& source);

// The adapters as HF PEFT saves them: adapter_model.safetensors with
// "base_model.model.<module>.lora_A.weight" / ".lora_B.weight" (module = the linear's name
// without ".weight") and adapter_config.json (peft_type LORA, r, lora_alpha, use_rslora for
// RoRA, target_modules). Files are written atomically into `dir` (created if missing).
void save_lora_peft(const std::string& dir, const LoraAdapters& adapters,
                    const std::string& base_model = "");
// Reads what save_lora_peft writes (and PEFT LoRA adapters of the same layout); throws
// mcw::Error naming the file for anything else (DoRA, bias adapters, mixed ranks).
LoraAdapters load_lora_peft(const std::string& dir);

}  // namespace mcw
