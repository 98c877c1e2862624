// How well proxy sensitivity measures order layers as the exact KL does: Spearman's rank
// correlation per setting (the layers' order within one column, what a per-setting choice
// reads) and over every cell at once (what a mixed-precision search compares), from the
// JSON tables of `mcw sensitivity --json` (same layers and settings in each).
//   sensitivity_rank KL.json PROXY.json [PROXY.json ...]  -> a Markdown table on stdout
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/search/spearman.h"

using json = nlohmann::json;

static json read(const char* path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(std::string("cannot read ") + path);
  return json::parse(in);
}

// The table's values of setting `s` (every setting when s < 0), row by row.
static std::vector<double> column(const json& t, int s) {
  std::vector<double> out;
  for (const json& row : t[t["measure"].get<std::string>()])
    for (size_t i = 0; i < row.size(); ++i)
      if (s < 0 || int(i) == s) out.push_back(row[i].get<double>());
  return out;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: sensitivity_rank KL.json PROXY.json [PROXY.json ...]\n");
    return 1;
  }
  try {
    const json kl = read(argv[1]);
    std::vector<json> proxies;
    for (int i = 2; i < argc; ++i) {
      proxies.push_back(read(argv[i]));
      if (proxies.back()["layers"] != kl["layers"] || proxies.back()["settings"] != kl["settings"])
        throw std::runtime_error(std::string(argv[i]) + " has other layers or settings");
    }
    std::printf("| setting |");
    for (const json& p : proxies) std::printf(" %s |", p["measure"].get<std::string>().c_str());
    std::printf("\n|---|");
    for (size_t i = 0; i < proxies.size(); ++i) std::printf("---|");
    std::printf("\n");
    const int settings = int(kl["settings"].size());
    for (int s = 0; s < settings; ++s) {
      std::printf("| %s |", kl["settings"][size_t(s)].get<std::string>().c_str());
      for (const json& p : proxies)
        std::printf(" %.3f |", mcw::spearman_correlation(column(kl, s), column(p, s)));
      std::printf("\n");
    }
    std::printf("| all cells |");
    for (const json& p : proxies)
      std::printf(" %.3f |", mcw::spearman_correlation(column(kl, -1), column(p, -1)));
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sensitivity_rank: %s\n", e.what());
    return 1;
  }
  return 0;
}
