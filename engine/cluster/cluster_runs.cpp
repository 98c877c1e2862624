#include "engine/cluster/cluster_runs.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <random>

#include "engine/core/error.h"

namespace fs = std::filesystem;

namespace mcw {

std::vector<ClusterTask> project_run_tasks(const std::string& mcw, const std::string& project_file,
                                           const std::vector<std::string>& recipes, bool baseline,
                                           const std::string& job_dir) {
  std::vector<ClusterTask> tasks;
  auto add = [&](const std::string& name, std::vector<std::string> selection) {
    const int i = int(tasks.size());
    std::vector<std::string> argv = {mcw, "run", project_file};
    argv.insert(argv.end(), selection.begin(), selection.end());
    argv.insert(argv.end(), {"--result-store", cluster_result_path(job_dir, i, "sqlite")});
    tasks.push_back({name, argv});
  };
  if (baseline) add("baseline", {"--baseline-only"});
  for (const std::string& r : recipes) add(r, {"--recipe", r, "--no-baseline"});
  return tasks;
}

std::string new_cluster_job_dir(const std::string& database_path) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", std::gmtime(&now));
  std::random_device rd;
  char tag[16];
  std::snprintf(tag, sizeof tag, "%06x", unsigned(rd()) & 0xffffff);
  const fs::path base = fs::absolute(database_path).parent_path() / ".mcw-cluster";
  fs::create_directories(base);
  return (base / (std::string(stamp) + "-" + tag)).string();
}

namespace {

std::unique_ptr<RunStore> open_result(const std::string& result_store) {
  if (!fs::exists(result_store)) throw Error(result_store, "the task left no result file");
  if (run_store_is_damaged(result_store))
    throw Error(result_store, "the task's result file is truncated or damaged");
  return RunStore::open_existing(result_store);
}

}  // namespace

std::vector<std::string> scan_layer_batches(const std::vector<std::string>& prefixes, int tasks) {
  const size_t n = prefixes.size();
  const size_t k = std::max<size_t>(1, std::min<size_t>(n, size_t(std::max(tasks, 1))));
  std::vector<std::string> batches(k);
  for (size_t b = 0; b < k; ++b)
    for (size_t i = b * n / k; i < (b + 1) * n / k; ++i)
      batches[b] += (batches[b].empty() ? "" : ",") + prefixes[i];
  return batches;
}

size_t merge_task_sensitivity(RunStore& store, const std::string& model_fingerprint,
                              const std::string& result_store) {
  const std::vector<SensitivityEntry> cells =
      open_result(result_store)->list_sensitivity(model_fingerprint);
  store.put_sensitivities(model_fingerprint, cells);
  return cells.size();
}

std::vector<int64_t> merge_task_runs(RunStore& store, const std::string& result_store) {
  const auto src = open_result(result_store);
  std::vector<int64_t> ids;
  for (const RunInfo& info : src->list_runs()) {
    if (!run_status_final(info.status)) continue;
    if (const auto run = src->get_run(info.id)) ids.insert(ids.begin(), store.import_run(*run));
  }
  return ids;
}

}  // namespace mcw
