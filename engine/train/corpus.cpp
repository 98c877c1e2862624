#include "engine/train/corpus.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "engine/core/error.h"

namespace fs = std::filesystem;

namespace mcw {

namespace {

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

void flush_entry(std::vector<std::string_view>& lines, std::vector<std::string>& out) {
  size_t b = 0, e = lines.size();
  while (b < e && blank(lines[b])) ++b;
  while (e > b && blank(lines[e - 1])) --e;
  if (b < e) {
    std::string entry;
    for (size_t i = b; i < e; ++i) {
      if (i > b) entry += '\n';
      std::string_view l = lines[i];
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      entry += l;
    }
    out.push_back(std::move(entry));
  }
  lines.clear();
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(p.string(), "cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(p.string(), "read failed");
  return ss.str();
}

void collect_files(const fs::path& dir, bool recurse, std::vector<fs::path>& out) {
  std::vector<fs::directory_entry> items;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    items.push_back(*it);
  if (ec) throw Error(dir.string(), "cannot list directory: " + ec.message());
  std::sort(items.begin(), items.end(),
            [](const auto& a, const auto& b) { return a.path().filename() < b.path().filename(); });
  for (const fs::directory_entry& e : items) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || ends_with(name, ".dat") || ends_with(name, ".u8"))
      continue;
    if (e.is_directory(ec)) {
      if (recurse) collect_files(e.path(), recurse, out);
    } else if (e.is_regular_file(ec)) {
      out.push_back(e.path());
    }
  }
}

}  // namespace

std::vector<std::string> split_fortune_entries(std::string_view text) {
  std::vector<std::string> out;
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    if (line == "%" || line == "%\r")
      flush_entry(lines, out);
    else
      lines.push_back(line);
    pos = nl + 1;
  }
  flush_entry(lines, out);
  return out;
}

std::vector<std::string> read_fortune_entries(const std::string& dir, bool include_subdirs) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw Error(dir, "corpus directory does not exist");
  if (!fs::is_directory(dir, ec)) throw Error(dir, "corpus path is not a directory");
  std::vector<fs::path> files;
  collect_files(dir, include_subdirs, files);
  std::set<fs::path> seen;  // canonical targets, so symlinked duplicates count once
  std::vector<std::string> entries;
  for (const fs::path& f : files) {
    const fs::path canon = fs::weakly_canonical(f, ec);
    if (!seen.insert(ec ? f : canon).second) continue;
    const std::string text = read_file(f);
    if (const size_t nul = text.find('\0'); nul != std::string::npos)
      throw Error(f.string(), "NUL byte: this is not a plain-text fortune file", int64_t(nul));
    for (std::string& e : split_fortune_entries(text)) entries.push_back(std::move(e));
  }
  if (entries.empty())
    throw Error(dir, "no fortune entries found (expected plain-text files with entries "
                     "separated by '%' lines; *.dat and *.u8 are skipped)");
  return entries;
}

CorpusSplit split_corpus(std::vector<std::string> entries, double eval_fraction, uint64_t seed) {
  if (!(eval_fraction >= 0 && eval_fraction < 1))
    throw Error("", "evaluation fraction must be in [0, 1), got " + std::to_string(eval_fraction));
  std::mt19937_64 rng(seed);
  for (size_t i = entries.size(); i > 1; --i) std::swap(entries[i - 1], entries[rng() % i]);
  const size_t n = entries.size();
  size_t n_eval = size_t(std::llround(eval_fraction * double(n)));
  if (eval_fraction > 0 && n >= 2) n_eval = std::clamp<size_t>(n_eval, 1, n - 1);
  CorpusSplit s;
  s.eval.assign(std::make_move_iterator(entries.begin()),
                std::make_move_iterator(entries.begin() + ptrdiff_t(n_eval)));
  s.train.assign(std::make_move_iterator(entries.begin() + ptrdiff_t(n_eval)),
                 std::make_move_iterator(entries.end()));
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += kEntrySeparator;
      out += v[i];
    }
    return out;
  };
  s.train_text = join(s.train);
  s.eval_text = join(s.eval);
  return s;
}

CorpusSplit load_fortune_corpus(const std::string& dir, double eval_fraction, uint64_t seed,
                                bool include_subdirs) {
  return split_corpus(read_fortune_entries(dir, include_subdirs), eval_fraction, seed);
}

}  // namespace mcw
