// A llama model with LoRA adapters kept apart, as PEFT runs an unmerged adapter: each
// adapted linear computes x·Wᵀ on its weight as the file stores it (a mapped bf16 or
// quantised tensor, through matmul_wt_stored) plus s·(x·Aᵀ)·Bᵀ in f32. No weight is copied
// or converted, so evaluating or generating with adapters costs what the model alone
// does, at any size; apply_lora's merged f32 weights would cost 4 bytes per adapted
// weight.
#pragma once
#include <memory>
#include <string>

#include "engine/model/causal_lm.h"
#include "engine/train/lora.h"

namespace mcw {

// `model` and `adapters` must outlive the view. Throws mcw::Error naming `source` (the
// adapter) for a module the model lacks, one that is not a decoder block's linear, or
// shapes that do not fit (apply_lora's checks).
std::unique_ptr<CausalLm> lora_lm_view(const LlamaModel& model, const LoraAdapters& adapters,
                                       const std::string& source);

}  // namespace mcw
