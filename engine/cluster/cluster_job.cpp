#include "engine/cluster/cluster_job.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "engine/io/atomic_file.h"

namespace fs = std::filesystem;

namespace mcw {
namespace {

// The array script. Each task reads its arguments (NUL-separated, so any character
// survives), runs them, and writes its exit status last by a rename.
constexpr const char* kJobScript = R"SH(#!/bin/bash
# MCW cluster job, run in its directory (sbatch --chdir): task i runs the arguments in
# tasks/<i>.argv (see engine/cluster/cluster_job.h).
i="$SLURM_ARRAY_TASK_ID"
mapfile -d '' -t argv < "tasks/$i.argv" || exit 1
"${argv[@]}"
rc=$?
echo "$rc" > "results/$i.exit.tmp" && mv -f "results/$i.exit.tmp" "results/$i.exit"
exit "$rc"
)SH";

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string tail_lines(const std::string& text, int lines) {
  size_t pos = text.size();
  while (pos > 0 && text[pos - 1] == '\n') --pos;
  const size_t end = pos;
  for (int n = 0; n < lines && pos > 0; ++n) {
    const size_t nl = text.rfind('\n', pos - 1);
    pos = nl == std::string::npos ? 0 : nl;
  }
  return text.substr(pos == 0 ? 0 : pos + 1, end - (pos == 0 ? 0 : pos + 1));
}

}  // namespace

std::string cluster_result_path(const std::string& dir, int task, const std::string& suffix) {
  return (fs::path(dir) / "results" / (std::to_string(task) + "." + suffix)).string();
}

void write_cluster_job(const std::string& dir, const std::vector<ClusterTask>& tasks) {
  if (tasks.empty()) throw Error(dir, "a cluster job needs at least one task");
  if (fs::exists(dir)) throw Error(dir, "a cluster job directory exists already");
  for (const char* sub : {"tasks", "results", "logs"}) fs::create_directories(fs::path(dir) / sub);
  for (size_t i = 0; i < tasks.size(); ++i) {
    std::string argv;
    for (const std::string& a : tasks[i].argv) {
      if (a.find('\0') != std::string::npos) throw Error(dir, "an argument holds a NUL byte");
      argv += a;
      argv.push_back('\0');
    }
    write_file_atomically((fs::path(dir) / "tasks" / (std::to_string(i) + ".argv")).string(), argv);
    write_file_atomically((fs::path(dir) / "tasks" / (std::to_string(i) + ".name")).string(),
                          tasks[i].name + "\n");
  }
  const fs::path script = fs::path(dir) / "job.sh";
  write_file_atomically(script.string(), kJobScript);
  fs::permissions(script, fs::perms::owner_exec, fs::perm_options::add);
}

namespace {

std::string submit_tasks(const std::string& dir, const std::vector<int>& tasks,
                         const SlurmSettings& settings) {
  const std::string id = slurm_submit_array(fs::absolute(dir).string(), "job.sh", tasks, settings,
                                            "mcw-" + fs::path(dir).filename().string());
  write_file_atomically((fs::path(dir) / "slurm_job").string(), id + "\n");
  return id;
}

}  // namespace

std::string submit_cluster_job(const std::string& dir, const SlurmSettings& settings) {
  std::vector<int> all(cluster_task_names(dir).size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = int(i);
  return submit_tasks(dir, all, settings);
}

std::vector<int> retry_cluster_job(const std::string& dir, const SlurmSettings& settings) {
  const std::string job = cluster_job_id(dir);
  if (!job.empty() && !slurm_task_states(job).empty())
    throw Error(dir, "job " + job + " still has tasks queued or running; retry when it is over");
  std::vector<int> again;
  const size_t n = cluster_task_names(dir).size();
  for (int i = 0; i < int(n); ++i) {
    const fs::path exit_file = cluster_result_path(dir, i, "exit");
    if (fs::exists(exit_file) && std::atoi(read_all(exit_file).c_str()) == 0) continue;
    fs::remove(exit_file);
    fs::remove(fs::path(dir) / "logs" / (std::to_string(i) + ".log"));
    again.push_back(i);
  }
  if (!again.empty()) submit_tasks(dir, again, settings);
  return again;
}

std::vector<std::string> cluster_task_names(const std::string& dir) {
  std::vector<std::string> names;
  for (int i = 0;; ++i) {
    const fs::path p = fs::path(dir) / "tasks" / (std::to_string(i) + ".name");
    if (!fs::exists(p)) break;
    std::string n = read_all(p);
    while (!n.empty() && n.back() == '\n') n.pop_back();
    names.push_back(n);
  }
  if (names.empty()) throw Error(dir, "not a cluster job directory (no tasks)");
  return names;
}

std::string cluster_job_id(const std::string& dir) {
  std::string id = read_all(fs::path(dir) / "slurm_job");
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

const char* cluster_task_state_name(ClusterTaskState s) {
  switch (s) {
    case ClusterTaskState::Pending:
      return "pending";
    case ClusterTaskState::Running:
      return "running";
    case ClusterTaskState::Done:
      return "done";
    default:
      return "failed";
  }
}

ClusterJobWatcher::ClusterJobWatcher(std::string dir)
    : dir_(std::move(dir)), job_(cluster_job_id(dir_)), names_(cluster_task_names(dir_)) {
  if (job_.empty()) throw Error(dir_, "the cluster job was not submitted");
}

std::vector<ClusterTaskStatus> ClusterJobWatcher::poll() {
  const std::map<int, std::string> queued = slurm_task_states(job_);
  std::vector<ClusterTaskStatus> out(names_.size());
  for (int i = 0; i < int(names_.size()); ++i) {
    ClusterTaskStatus& s = out[size_t(i)];
    s.name = names_[size_t(i)];
    const fs::path exit_file = cluster_result_path(dir_, i, "exit");
    if (fs::exists(exit_file)) {
      s.exit_code = std::atoi(read_all(exit_file).c_str());
      s.state = s.exit_code == 0 ? ClusterTaskState::Done : ClusterTaskState::Failed;
    } else if (const auto q = queued.find(i); q != queued.end()) {
      s.state = q->second == "PENDING" ? ClusterTaskState::Pending : ClusterTaskState::Running;
      missing_.erase(i);
    } else {
      // Neither queued nor over: failed once it stays so for a second poll.
      s.state = ++missing_[i] >= 2 ? ClusterTaskState::Failed : ClusterTaskState::Running;
      s.exit_code = -1;
    }
    if (s.state == ClusterTaskState::Failed) {  // only then is the log read
      s.log_tail = tail_lines(read_all(fs::path(dir_) / "logs" / (std::to_string(i) + ".log")), 5);
      if (s.exit_code < 0)
        s.log_tail = "ended without an exit status (killed, cancelled or out of time)" +
                     (s.log_tail.empty() ? std::string() : "\n" + s.log_tail);
    }
  }
  return out;
}

}  // namespace mcw
