#include "app/cli/cluster_follow.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "app/cli/progress_bar.h"
#include "engine/core/error.h"

namespace mcw::cli {

SlurmSettings slurm_settings(const Args& args, const SlurmSettings& saved) {
  SlurmSettings slurm;
  slurm.partition = args.value_or("partition", saved.partition);
  slurm.time = args.value_or("time", saved.time);
  slurm.mem = args.value_or("mem", saved.mem);
  slurm.gpus = int(args.int_or("gpus", saved.gpus));
  slurm.max_concurrent = int(args.int_or("max-concurrent", saved.max_concurrent));
  return slurm;
}

int follow_cluster_job(const std::string& dir,
                       const std::function<bool(int task, const std::string& name)>& merge) {
  const std::string job = cluster_job_id(dir);
  const SigintCancel sigint;
  ClusterJobWatcher watcher(dir);
  std::vector<std::string> shown;
  bool failed = false;
  while (true) {
    const std::vector<ClusterTaskStatus> tasks = watcher.poll();
    shown.resize(tasks.size());
    bool over = true;
    for (size_t i = 0; i < tasks.size(); ++i) {
      const ClusterTaskStatus& t = tasks[i];
      const std::string state = cluster_task_state_name(t.state);
      over &= t.state == ClusterTaskState::Done || t.state == ClusterTaskState::Failed;
      if (shown[i] == state) continue;
      shown[i] = state;
      const bool has_result = std::filesystem::exists(cluster_result_path(dir, int(i), "sqlite"));
      if (t.state == ClusterTaskState::Done ||
          (t.state == ClusterTaskState::Failed && has_result)) {
        try {
          failed |= !merge(int(i), t.name);
        } catch (const Error& e) {
          std::fprintf(stderr, "mcw: task %zu (%s): %s\n", i, t.name.c_str(), e.what());
          failed = true;
        }
      } else if (t.state == ClusterTaskState::Failed) {
        std::fprintf(stderr, "mcw: task %zu (%s) failed (exit %d): %s\n", i, t.name.c_str(),
                     t.exit_code, t.log_tail.c_str());
        failed = true;
      } else {
        std::fprintf(stderr, "mcw: task %zu %-24s %s\n", i, t.name.c_str(), state.c_str());
      }
    }
    if (over) break;
    for (int k = 0; k < 20 && !sigint.token().cancelled(); ++k)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (sigint.token().cancelled()) {
      slurm_cancel(job);
      std::fprintf(stderr, "mcw: cancelled Slurm job %s (files kept in %s)\n", job.c_str(),
                   dir.c_str());
      return 130;
    }
  }
  return failed ? 1 : 0;
}

}  // namespace mcw::cli
