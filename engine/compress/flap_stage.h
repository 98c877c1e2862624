// The recipe stage "flap": FLAP (An et al., 2024) as its authors run it by default,
// attention heads and MLP channels pruned together with the pruning spread over the layers
// by one global threshold (the AL-AM structure). One calibration pass over the uncompressed
// model gathers, for every layer, the fluctuation metric of each o_proj and down_proj input
// channel (var(x_j)·‖W[:, j]‖², the heads' squared); each layer's metrics are standardised
// (minus their mean, over their standard deviation), a head scores its channels' mean, and
// all heads and channels of the model are ranked on one scale. Units are kept from the top
// until the kept weights make up 1 − fraction of the attention and MLP weights (a head
// weighs its q/k/v/o parameters in MLP channels: 512/3 for Llama-7B's heads of 128); the
// rest go, their mean contribution moved into o_proj's / down_proj's bias. Layers then
// differ in width (LlamaConfig::block_shapes).
//
// One deviation, as an option: the reference lets a layer lose every head or every
// channel; MCW keeps each layer's best unit by default (keep_one), since a block without
// attention or MLP has no form in any file format it writes.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/compress/calibrate.h"
#include "engine/compress/structured_stage.h"

namespace mcw {

struct FlapAllocation {
  std::vector<std::vector<int64_t>> heads, channels;  // per layer, removed units, ascending
};

// The global allocation from the raw metrics: attention[l] the metric of each o_proj input
// channel of layer l (not yet squared), mlp[l] of each down_proj input channel; a head unit
// is `unit_width` consecutive attention channels and weighs `unit_weight` MLP channels.
// channel_multiple > 1 (not the reference's): each layer's kept MLP channels are rounded to
// the nearest multiple of it (at least one multiple), restoring its best removed channels
// or removing its worst kept ones, so that a later group-wise quantiser's groups divide
// down_proj's inputs.
FlapAllocation flap_global_allocation(const std::vector<std::vector<double>>& attention,
                                      const std::vector<std::vector<double>>& mlp,
                                      int64_t unit_width, double unit_weight, double fraction,
                                      bool keep_one = true, int64_t channel_multiple = 1);

// An attention unit's weights over an MLP channel's: (q rows + k/v rows + o columns) / 3.
double flap_unit_weight(const LlamaConfig& c);

struct FlapOptions {
  double fraction = 0.2;  // of the blocks' attention and MLP weights
  bool compensate = true;
  bool keep_one = true;
  int64_t channel_multiple = 1;
};

// Prunes `model` in place (its blocks may be mapped in the file's dtype: each layer is made
// f32 only when it is sliced), reports each touched weight as Dense in its new shape, and
// calls block_done(l) after slicing layer l.
FlapAllocation run_flap_stage(LlamaModel& model, const FlapOptions& o,
                              const std::vector<std::vector<int32_t>>& windows,
                              const RecordWeightFn& record = {}, const ProgressFn& progress = {},
                              const CancelToken* cancel = nullptr,
                              const CalibrationOptions& calibration = {},
                              const std::function<void(int64_t layer)>& block_done = {});

}  // namespace mcw
