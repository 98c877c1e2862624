// mcw recover --method block-ap: its options from the command line, and its figures for
// recovery.json and the terminal.
#pragma once
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "engine/train/block_ap.h"

namespace mcw::cli {

// --paper starts from the paper's setting; --train-windows, --val-windows, --window,
// --batch, --epochs, --quant-lr, --weight-lr and --seed override it. The window is capped
// at the model's context; block_ap checks the rest.
BlockApOptions block_ap_options(const Args& args, int64_t context);

// The options that change the result (recovery.json, and the checkpoint's identity).
nlohmann::ordered_json block_ap_options_json(const BlockApOptions& o);
// Per block: its validation MSE before training and after each epoch, the mean training
// MSE per epoch and the seconds it took.
nlohmann::ordered_json block_ap_blocks_json(const std::vector<BlockApBlock>& blocks);
// The trained blocks as a table on stdout.
void print_block_ap_blocks(const std::vector<BlockApBlock>& blocks);
double block_ap_seconds(const std::vector<BlockApBlock>& blocks);  // all blocks' together

}  // namespace mcw::cli
