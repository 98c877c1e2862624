// mcw diff: two models compared tensor by tensor (engine/eval/model_diff.h), as a table
// in A's tensor order or as JSON.
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/progress_bar.h"
#include "engine/eval/model_diff.h"
#include "engine/io/model_file.h"

namespace mcw::cli {

const char* const kDiffUsage =
    "usage: mcw diff <model A> <model B> [--json] [--top N] [--threads N]\n\n"
    "Compares two models tensor by tensor, matching tensors by name: a row per tensor with\n"
    "its shape, dtype in A and B, the relative L2 difference |A-B|/|A|, the largest\n"
    "absolute difference, the cosine similarity, the share of elements that changed and\n"
    "the share of zeros in A and B. Tensors only one model has and tensors whose shape\n"
    "changed are listed too. Any dtype is compared by its dequantised values. Rows follow\n"
    "A's tensor order, then the tensors only B has.\n"
    "The models may be in different formats (.safetensors, .gguf, llama2.c .bin, or a\n"
    "Hugging Face directory), e.g. a model and its compressed copy.\n\n"
    "  --json        one machine-readable JSON document on stdout (an infinite relative L2,\n"
    "                where A is all zeros and B is not, is written as null)\n"
    "  --top N       only the N tensors that differ most, most different first (missing\n"
    "                and reshaped tensors first, then by relative L2)\n"
    "  --threads N   worker threads (default: all cores)\n";

static std::string dtype_text(const TensorDiff& r) {
  const std::string a(dtype_name(r.dtype_a)), b(dtype_name(r.dtype_b));
  if (!r.in_b()) return a;
  if (!r.in_a()) return b;
  return a == b ? a : a + "->" + b;
}

static std::string shape_text(const TensorDiff& r) {
  if (!r.in_b()) return shape_string(r.shape_a);
  if (!r.in_a()) return shape_string(r.shape_b);
  if (r.shape_a == r.shape_b) return shape_string(r.shape_a);
  return shape_string(r.shape_a) + "->" + shape_string(r.shape_b);
}

static std::string percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * share);
  return buf;
}

// Larger is more different; structural differences rank above any value difference.
static double rank(const TensorDiff& r) {
  if (r.kind != TensorDiffKind::Compared) return std::numeric_limits<double>::infinity();
  return std::isnan(r.rel_l2) ? 0.0 : r.rel_l2;
}

static nlohmann::ordered_json row_json(const TensorDiff& r) {
  nlohmann::ordered_json j;
  j["name"] = r.name;
  j["status"] = tensor_diff_kind_name(r.kind);
  if (r.in_a())
    j["a"] = {{"shape", r.shape_a}, {"dtype", dtype_name(r.dtype_a)}, {"bytes", r.bytes_a}};
  if (r.in_b())
    j["b"] = {{"shape", r.shape_b}, {"dtype", dtype_name(r.dtype_b)}, {"bytes", r.bytes_b}};
  j["differs"] = r.differs();
  if (r.kind == TensorDiffKind::Compared) {
    j["relative_l2"] = std::isfinite(r.rel_l2) ? nlohmann::ordered_json(r.rel_l2) : nullptr;
    j["max_abs_diff"] = r.max_abs;
    j["cosine"] = r.cosine;
    j["changed_fraction"] = r.changed_fraction;
    j["sparsity_a"] = r.sparsity_a;
    j["sparsity_b"] = r.sparsity_b;
    j["nonfinite_pairs"] = r.sums.nonfinite;
  }
  return j;
}

static std::string summary_text(const ModelDiff::Summary& s) {
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "%zu tensors: %zu differ (%zu in value, %zu in dtype), %zu only in A, %zu only "
                "in B, %zu with another shape; %s -> %s",
                s.tensors, s.differing, s.value_changed, s.dtype_changed, s.only_in_a, s.only_in_b,
                s.shape_mismatch, human_bytes(s.bytes_a).c_str(), human_bytes(s.bytes_b).c_str());
  return buf;
}

static void print_table(const std::vector<const TensorDiff*>& rows) {
  size_t w = 6, sw = 5, dw = 5;
  for (const TensorDiff* r : rows) {
    w = std::max(w, r->name.size());
    sw = std::max(sw, shape_text(*r).size());
    dw = std::max(dw, dtype_text(*r).size());
  }
  std::printf("%-*s  %-*s  %-*s %11s %11s %9s %8s  %s\n", int(w), "tensor", int(sw), "shape",
              int(dw), "dtype", "rel. L2", "max |d|", "cosine", "changed", "sparsity A->B");
  for (const TensorDiff* r : rows) {
    std::printf("%-*s  %-*s  %-*s ", int(w), r->name.c_str(), int(sw), shape_text(*r).c_str(),
                int(dw), dtype_text(*r).c_str());
    switch (r->kind) {
      case TensorDiffKind::Compared: {
        const std::string sparsity = r->sparsity_a == r->sparsity_b
                                         ? percent(r->sparsity_a)
                                         : percent(r->sparsity_a) + " -> " + percent(r->sparsity_b);
        std::printf("%11s %11s %9.6f %8s  %s\n", short_float(r->rel_l2).c_str(),
                    short_float(r->max_abs).c_str(), r->cosine,
                    percent(r->changed_fraction).c_str(), sparsity.c_str());
        break;
      }
      case TensorDiffKind::ShapeMismatch:
        std::printf("%11s\n", "shape differs");
        break;
      case TensorDiffKind::OnlyInA:
        std::printf("%11s\n", "only in A");
        break;
      case TensorDiffKind::OnlyInB:
        std::printf("%11s\n", "only in B");
        break;
    }
  }
}

int run_diff(const std::vector<std::string>& argv) {
  Args args(argv, {"top", "threads"}, {"json"});
  if (args.positional().size() != 2)
    throw UsageError{"diff takes two model paths (see mcw help diff)"};
  const long long top = args.int_or("top", -1);
  if (args.value("top") && top < 1) throw UsageError{"--top wants a positive count"};
  std::unique_ptr<tbb::global_control> threads;
  if (const long long n = args.int_or("threads", 0); n > 0)
    threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    size_t(n));
  const ModelFile a = open_model_file(args.positional()[0]);
  const ModelFile b = open_model_file(args.positional()[1]);

  const SigintCancel sigint;
  ModelDiff diff;
  try {
    ProgressBar bar("diff");
    diff = diff_models(a, b, bar.callback(), &sigint.token());
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: diff cancelled\n");
    return 130;
  }

  std::vector<const TensorDiff*> rows;
  for (const TensorDiff& r : diff.rows) rows.push_back(&r);
  if (top > 0) {
    std::stable_sort(rows.begin(), rows.end(),
                     [](const TensorDiff* x, const TensorDiff* y) { return rank(*x) > rank(*y); });
    if (rows.size() > size_t(top)) rows.resize(size_t(top));
  }
  const ModelDiff::Summary s = diff.summary();
  if (args.flag("json")) {
    nlohmann::ordered_json doc;
    doc["a"] = {{"path", a.path}, {"format", model_format_name(a.format)}};
    doc["b"] = {{"path", b.path}, {"format", model_format_name(b.format)}};
    auto& list = doc["tensors"] = nlohmann::ordered_json::array();
    for (const TensorDiff* r : rows) list.push_back(row_json(*r));
    doc["summary"] = {{"tensors", s.tensors},
                      {"differing", s.differing},
                      {"value_changed", s.value_changed},
                      {"dtype_changed", s.dtype_changed},
                      {"only_in_a", s.only_in_a},
                      {"only_in_b", s.only_in_b},
                      {"shape_mismatch", s.shape_mismatch},
                      {"bytes_a", s.bytes_a},
                      {"bytes_b", s.bytes_b}};
    // Names come from untrusted files: replace invalid UTF-8 rather than fail the dump.
    std::printf("%s\n", doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("A  %s (%s)\nB  %s (%s)\n\n", a.path.c_str(), model_format_name(a.format),
              b.path.c_str(), model_format_name(b.format));
  print_table(rows);
  if (top > 0 && size_t(top) < diff.rows.size())
    std::printf("(the %lld most different of %zu tensors)\n", top, diff.rows.size());
  std::printf("\n%s\n", summary_text(s).c_str());
  if (s.compared + s.shape_mismatch == 0 && s.only_in_a && s.only_in_b)
    std::printf(
        "no tensor name is in both models: they name tensors differently (a GGUF or\n"
        "llama2.c file against a Hugging Face one?); names are matched exactly\n");
  return 0;
}

}  // namespace mcw::cli
