// The training corpus: fortune(6) files (Debian's `fortunes`, /usr/share/games/fortunes),
// plain text whose entries are separated by lines that are exactly "%". The entries are
// shuffled with a seeded RNG and a fixed share is held out as evaluation text.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mcw {

// Separates entries in train_text/eval_text: the fortune separator itself, because entries
// contain blank lines of their own.
inline constexpr std::string_view kEntrySeparator = "\n%\n";

// Entries of one fortune file: split on lines that are exactly "%" (a trailing '\r' is
// tolerated), leading and trailing blank lines dropped, empty entries skipped.
std::vector<std::string> split_fortune_entries(std::string_view text);

// Every entry of every fortune file in `dir`, files in name order. Skips *.dat (strfile
// indexes), *.u8 (symlinks to the same text), hidden files, anything that resolves to a
// file already read, and subdirectories (such as off/) unless `include_subdirs`.
// Throws mcw::Error when the directory is missing, holds no entries, or a file looks binary.
std::vector<std::string> read_fortune_entries(const std::string& dir, bool include_subdirs = false);

struct CorpusSplit {
  std::vector<std::string> train, eval;  // entries
  std::string train_text, eval_text;     // entries joined with kEntrySeparator
};

// Shuffles (Fisher–Yates with mt19937_64(seed), the same on every platform) and holds out
// round(eval_fraction · n) entries, at least one when there are two or more and the
// fraction is positive. Throws mcw::Error for a fraction outside [0, 1).
CorpusSplit split_corpus(std::vector<std::string> entries, double eval_fraction, uint64_t seed);

CorpusSplit load_fortune_corpus(const std::string& dir, double eval_fraction = 0.1,
                                uint64_t seed = 1, bool include_subdirs = false);

}  // namespace mcw
