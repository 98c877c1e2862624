// What the commands that send work to a cluster share (mcw run, mcw sensitivity --on
// slurm): sbatch's options, and following a submitted job until every task is over.
#pragma once
#include <functional>
#include <string>

#include "app/cli/args.h"
#include "engine/cluster/cluster_job.h"

namespace mcw::cli {

// The project's saved settings (Project::cluster) with the options given overriding them.
SlurmSettings slurm_settings(const Args& args, const SlurmSettings& saved);

// Follows the job in `dir`: prints each task's state as it changes (on stderr), calls merge(task,
// name) for a task that finished (or failed but left its result file), prints a failed
// task's log tail, and cancels the job on Ctrl-C. merge returns false for a result that
// records a failure, or throws mcw::Error for one that cannot be read. Returns 0 when every
// task finished and merged, 1 when one failed, 130 when cancelled.
int follow_cluster_job(const std::string& dir,
                       const std::function<bool(int task, const std::string& name)>& merge);

}  // namespace mcw::cli
