#include "app/cli/block_ap_args.h"

#include <algorithm>
#include <cstdio>

namespace mcw::cli {

BlockApOptions block_ap_options(const Args& args, int64_t context) {
  BlockApOptions o = args.flag("paper") ? block_ap_paper_options() : BlockApOptions{};
  o.train_windows = args.int_or("train-windows", o.train_windows);
  o.val_windows = args.int_or("val-windows", o.val_windows);
  o.seq_len = std::min<int64_t>(args.int_or("window", o.seq_len), context);
  o.batch = args.int_or("batch", o.batch);
  o.epochs = args.int_or("epochs", o.epochs);
  o.quant_lr = args.number_or("quant-lr", o.quant_lr);
  o.weight_lr = args.number_or("weight-lr", o.weight_lr);
  o.seed = uint64_t(args.int_or("seed", int64_t(o.seed)));
  return o;
}

nlohmann::ordered_json block_ap_options_json(const BlockApOptions& o) {
  return {{"train_windows", o.train_windows}, {"val_windows", o.val_windows},
          {"window", o.seq_len},              {"batch", o.batch},
          {"epochs", o.epochs},               {"quant_lr", o.quant_lr},
          {"weight_lr", o.weight_lr},         {"min_lr_factor", o.min_lr_factor},
          {"weight_decay", o.weight_decay},   {"seed", o.seed}};
}

nlohmann::ordered_json block_ap_blocks_json(const std::vector<BlockApBlock>& blocks) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const BlockApBlock& b : blocks)
    out.push_back({{"layer", b.layer},
                      {"start_val_mse", b.start_val},
                      {"val_mse", b.val_loss},
                      {"train_mse", b.train_loss},
                      {"seconds", b.seconds}});
  return out;
}

void print_block_ap_blocks(const std::vector<BlockApBlock>& blocks) {
  std::printf("%6s %14s %14s %8s\n", "block", "val MSE before", "val MSE after", "seconds");
  for (const BlockApBlock& b : blocks) {
    if (b.val_loss.empty()) continue;  // nothing of it was trained
    std::printf("%6lld %14.6g %14.6g %8.1f\n", (long long)b.layer, b.start_val,
                b.val_loss.back(), b.seconds);
  }
}

double block_ap_seconds(const std::vector<BlockApBlock>& blocks) {
  double s = 0;
  for (const BlockApBlock& b : blocks) s += b.seconds;
  return s;
}

}  // namespace mcw::cli
