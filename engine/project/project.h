// A project file (*.mcwproj, JSON): which model, which texts, which recipes and how to
// evaluate. In memory every path is absolute; on disk paths are stored relative to the
// project file, so a project directory can be moved or shared together with its files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cluster/slurm.h"

namespace mcw {

inline constexpr int kProjectFormatVersion = 1;  // the newest format this MCW reads/writes

struct ProjectRecipe {
  std::string name;
  std::string path;         // absolute; empty when the recipe is inline
  std::string inline_text;  // the recipe itself when path is empty
  bool is_inline() const { return path.empty(); }
};

struct ProjectEvalSettings {
  int64_t window = 256;
  int64_t stride = 256;    // 1 <= stride <= window
  int64_t max_tokens = 0;  // 0: the whole evaluation text
};

struct Project {
  std::string name;
  std::string model_path;        // absolute; empty when no model is chosen yet
  // Absolute or empty: text files, or for an ONNX graph OCR sets (folders, ocr_eval.h).
  std::string calibration_path;
  std::string evaluation_path;
  std::vector<ProjectRecipe> recipes;
  ProjectEvalSettings eval;
  std::string database_path;  // absolute; empty means default_database_path()
  // sbatch's settings for work sent to a cluster (`--on slurm`; "cluster" in the file,
  // written only when something is set): the defaults the command-line options override.
  SlurmSettings cluster;
};

// "<dir of project file>/<name>.mcwdb", with characters that cannot be in a file name
// replaced by '_'.
std::string default_database_path(const std::string& project_file, const std::string& name);

// Throws mcw::Error (one line, naming the file, and the byte offset for broken JSON) for a
// missing or unreadable file, broken JSON, a missing or wrong-typed key, out-of-range
// settings, or a format_version newer than kProjectFormatVersion. Missing model or data
// files are not errors here: see check_project().
Project load_project(const std::string& path);

// Atomic (temp file + fsync + rename): on failure the previous file stays as it was.
// Throws mcw::Error.
void save_project(const Project& project, const std::string& path);

struct ProjectProblem {
  std::string field;    // "model", "evaluation", "recipes[1]", ...
  std::string message;  // one line, naming the path
};

// What is wrong with the files a project points to (missing, a directory where a file
// is expected, ...). An empty list means every referenced file exists.
std::vector<ProjectProblem> check_project(const Project& project);

}  // namespace mcw
