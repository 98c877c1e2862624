// Slurm, reached through its own commands (sbatch, squeue, scancel) as a user would: MCW
// does not link Slurm and schedules nothing itself. A job is an array of self-contained
// tasks (cluster_job.h); SLURM_CONF in the environment picks the cluster, as for the
// commands themselves.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace mcw {

// sbatch's settings for a job, as the user gives them (saved in the project): empty or 0
// leaves Slurm's default.
struct SlurmSettings {
  std::string partition, time, mem;  // --partition, --time (e.g. 2:00:00), --mem (e.g. 32G)
  int gpus = 0;                      // --gpus-per-task
  int max_concurrent = 0;            // the array's %K: at most K tasks at once
};

// Submits dir/script as an array of the tasks `indices` that run in `dir` (an absolute
// path), each task's output to dir/logs/<index>.log. Returns the job id. Throws mcw::Error
// with sbatch's own message when the submission is refused (or sbatch is not installed).
std::string slurm_submit_array(const std::string& dir, const std::string& script,
                               const std::vector<int>& indices, const SlurmSettings& s,
                               const std::string& job_name);

// The state squeue reports for each task of the job it still knows (PENDING, RUNNING,
// COMPLETING, ...), by index. Tasks that ended and left the queue are absent; an empty map
// when the whole job has left the queue. Throws mcw::Error when squeue fails.
std::map<int, std::string> slurm_task_states(const std::string& job);

// scancel of the whole job (index < 0) or of one task.
void slurm_cancel(const std::string& job, int index = -1);

}  // namespace mcw
