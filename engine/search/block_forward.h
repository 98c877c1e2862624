// The llama forward pass from a decoder block onward: what a sensitivity cell runs when the
// hidden states entering block L were kept from a pass of the original model (blocks
// before L are unchanged by a cell that compresses a layer of block L). Built from the
// block pieces llama_model.h exposes, in llama_forward's order and arithmetic: started
// from the same block input, the logits equal llama_forward's bit for bit.
#pragma once
#include <cstdint>

#include "engine/model/llama_model.h"

namespace mcw {

// Runs decoder block `layer` on x [T, D] in place: x becomes the block's output, for a
// window that starts at position 0 (a fresh KV cache).
void llama_block(const LlamaModel& model, int64_t layer, float* x, int64_t T);

// The head on the last block's output x [T, D]: final norm, then logits [T, vocab].
void llama_head(const LlamaModel& model, const float* x, int64_t T, float* logits);

}  // namespace mcw
