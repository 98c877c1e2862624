// A project's recipe runs and sensitivity scans as cluster jobs (cluster_job.h). Runs: one
// task per recipe (and one for the baseline), each `mcw run PROJECT --recipe NAME
// --no-baseline --result-store FILE` into its own run store in the job's results/. Scans:
// one task per batch of blocks, `mcw sensitivity PROJECT ... --layers 0.,1. --result-store
// FILE`. The submitting side merges each task's store into the project's as it finishes.
#pragma once
#include <string>
#include <vector>

#include "engine/cluster/cluster_job.h"
#include "engine/runs/run_store.h"

namespace mcw {

// The tasks: the baseline first when `baseline`, then the recipes in order. `mcw` and
// `project_file` are absolute paths the cluster's nodes see (a shared filesystem).
std::vector<ClusterTask> project_run_tasks(const std::string& mcw, const std::string& project_file,
                                           const std::vector<std::string>& recipes, bool baseline,
                                           const std::string& job_dir);

// A new job directory for `database_path`'s project: .mcw-cluster/<UTC time>-<random>
// beside the store.
std::string new_cluster_job_dir(const std::string& database_path);

// Imports every finished run of a task's result store into `store` (RunStore::import_run:
// twice is harmless); returns the ids in `store`. A missing, truncated or damaged result
// file is an mcw::Error naming it.
std::vector<int64_t> merge_task_runs(RunStore& store, const std::string& result_store);

// The blocks' layer prefixes ("0.", "1.", ...; or the user's own) in `tasks` contiguous
// batches (at most one per prefix), each as a --layers value.
std::vector<std::string> scan_layer_batches(const std::vector<std::string>& prefixes, int tasks);

// Copies every sensitivity cell of `model_fingerprint` in a task's result store into
// `store` (a cell there already is replaced by the same value); returns how many. Errors as
// merge_task_runs.
size_t merge_task_sensitivity(RunStore& store, const std::string& model_fingerprint,
                              const std::string& result_store);

}  // namespace mcw
