// Small tokenizer.json documents built in tests, so that expected ids can be worked out by
// hand: every byte b is id b (its GPT-2 alphabet character spelled out via the engine's
// table, which test_tokenizer.cpp checks against the definition), merged tokens follow.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model/byte_level.h"

namespace mcw::test {

// merges are given in the file's spelling ("Ġ" for a space); each result gets the next id.
inline nlohmann::json byte_level_doc(const std::vector<std::pair<std::string, std::string>>& merges,
                                     bool pair_form = false, bool use_regex = true) {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[mcw::byte_level_char(uint8_t(b))] = id++;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = id++;
    if (pair_form) {
      list.push_back({a, b});
    } else {
      list.push_back(a + " " + b);
    }
  }
  return {{"version", "1.0"},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", use_regex}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", list}}}};
}

}  // namespace mcw::test
