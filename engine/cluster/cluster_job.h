// A cluster job: self-contained `mcw` invocations (one recipe run, a batch of scan cells,
// ...) run as the tasks of one Slurm array, each writing its own files in the job's
// directory on the shared filesystem; only the submitting side writes the project's run
// store (never several SQLite writers over a network filesystem). The directory:
//   job.sh            the array script: task i runs the arguments in tasks/<i>.argv
//   tasks/<i>.argv    the task's arguments, NUL-separated; tasks/<i>.name its name
//   results/<i>.*     what the task writes; results/<i>.exit (its exit status) comes last,
//                     by an atomic rename, and says the task is over
//   logs/<i>.log      its stdout and stderr
//   slurm_job         the Slurm job id, once submitted
// Inputs (the model, the texts) are referenced where they are, never copied per task.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/cluster/slurm.h"

namespace mcw {

struct ClusterTask {
  std::string name;
  std::vector<std::string> argv;  // argv[0]: the program, an absolute path
};

// Creates `dir` (which must not exist) with the tasks and job.sh.
void write_cluster_job(const std::string& dir, const std::vector<ClusterTask>& tasks);
// Submits a job written by write_cluster_job and records its id in the directory.
std::string submit_cluster_job(const std::string& dir, const SlurmSettings& settings);
// Submits again, as a new array, every task of the job that did not end with status 0
// (their exit files and logs are cleared first), and records the new id. Returns the
// tasks resubmitted (none: nothing to retry, nothing submitted). Refused while the job
// still has tasks queued or running.
std::vector<int> retry_cluster_job(const std::string& dir, const SlurmSettings& settings);
// The job's task names and Slurm id ("" before submission), read back from `dir`.
std::vector<std::string> cluster_task_names(const std::string& dir);
std::string cluster_job_id(const std::string& dir);

enum class ClusterTaskState { Pending, Running, Done, Failed };
const char* cluster_task_state_name(ClusterTaskState s);

struct ClusterTaskStatus {
  std::string name;
  ClusterTaskState state = ClusterTaskState::Pending;
  int exit_code = 0;     // of a task that ended
  std::string log_tail;  // last lines of its log, for a failed task
};

// Follows a submitted job: each poll() combines the exit files with squeue. A task that
// left the queue without an exit file (killed, out of time, its node lost) counts as failed
// only when it is still so one poll later, so that a file that is slow to show on a
// network filesystem is not taken for a failure.
class ClusterJobWatcher {
 public:
  explicit ClusterJobWatcher(std::string dir);
  std::vector<ClusterTaskStatus> poll();
  const std::string& dir() const { return dir_; }
  const std::string& job_id() const { return job_; }

 private:
  std::string dir_, job_;
  std::vector<std::string> names_;
  std::map<int, int> missing_;  // task -> polls it was neither queued nor had an exit file
};

// The path of task i's file `suffix` in results/ ("3.sqlite").
std::string cluster_result_path(const std::string& dir, int task, const std::string& suffix);

}  // namespace mcw
