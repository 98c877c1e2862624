// The shape side of structured pruning: which unit of attention is removed, how many per
// layer, the config that results, and slicing a model down to it. Layers may lose
// different numbers of units (FLAP's global allocation): the config then lists each
// block's widths (LlamaConfig::block_shapes).
//
// Attention units. With n_kv_heads > 1 (MHA or GQA) the unit is a whole key/value group: its
// n_heads / n_kv_heads query heads and the k/v head they share, so n_heads % n_kv_heads
// stays 0 and k_proj/v_proj shrink too (for MHA a group is one head). With a single kv head
// (MQA) removing the group would remove everything, so the unit is one query head and k/v
// stay as they are. The choice is the model's (its widest block), the same in every block.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/model/llama_model.h"

namespace mcw {

struct HeadUnits {
  int64_t count = 0;           // units per layer
  int64_t heads_per_unit = 0;  // query heads in one unit
  bool with_kv = false;        // a unit owns a k/v head
  int64_t q_width(const LlamaConfig& c) const { return heads_per_unit * c.head_dim; }
};
HeadUnits head_units(const LlamaConfig& c, int64_t layer);

// round(fraction · units), at most units − 1 (something always stays).
int64_t units_to_remove(int64_t units, double fraction);

// The config after removing removed[l] attention units / MLP channels from block l.
LlamaConfig config_without_heads(const LlamaConfig& c, const std::vector<int64_t>& removed);
LlamaConfig config_without_channels(const LlamaConfig& c, const std::vector<int64_t>& removed);

// Slice every layer: removed[l] lists the units (attention) or intermediate channels (MLP)
// of layer l, ascending; at least one stays in every layer. wq/wk/wv/bq/bk/bv lose rows,
// wo loses columns (attention); w_gate/w_up/b_up lose rows, w_down columns (MLP). Output biases
// and norms are untouched; the config is updated. Throws mcw::Error on a malformed plan.
void remove_heads(LlamaModel& m, const std::vector<std::vector<int64_t>>& removed);
void remove_channels(LlamaModel& m, const std::vector<std::vector<int64_t>>& removed);
// The same for one layer (only its tensors need be f32), the config's other blocks kept.
void remove_layer_heads(LlamaModel& m, int64_t layer, const std::vector<int64_t>& removed);
void remove_layer_channels(LlamaModel& m, int64_t layer, const std::vector<int64_t>& removed);

}  // namespace mcw
