#include "engine/cluster/slurm.h"

#include <sstream>
#include <vector>

#include "engine/cluster/subprocess.h"
#include "engine/core/error.h"

namespace mcw {
namespace {

std::string first_line(const std::string& s) {
  const size_t end = s.find('\n');
  return end == std::string::npos ? s : s.substr(0, end);
}

ProcessResult checked(const std::vector<std::string>& argv) {
  ProcessResult r = run_process(argv);
  if (r.exit_code != 0) {
    std::string why = first_line(r.err.empty() ? r.out : r.err);
    if (r.exit_code == 127) why = "not installed (not on PATH)";
    throw Error(argv[0], why.empty() ? "exit status " + std::to_string(r.exit_code) : why);
  }
  return r;
}

}  // namespace

std::string slurm_submit_array(const std::string& dir, const std::string& script,
                               const std::vector<int>& indices, const SlurmSettings& s,
                               const std::string& job_name) {
  if (indices.empty()) throw Error(dir, "a job needs at least one task");
  std::string array;  // "0-7" for a whole job, "1,3" for a retry
  bool whole = true;
  for (size_t k = 0; k < indices.size(); ++k) whole &= indices[k] == int(k);
  if (whole) array = "0-" + std::to_string(indices.size() - 1);
  for (size_t k = 0; !whole && k < indices.size(); ++k)
    array += (k ? "," : "") + std::to_string(indices[k]);
  if (s.max_concurrent > 0) array += "%" + std::to_string(s.max_concurrent);
  std::vector<std::string> argv = {"sbatch",           "--parsable",
                                   "--array=" + array, "--job-name=" + job_name,
                                   "--chdir=" + dir,   "--output=" + dir + "/logs/%a.log"};
  if (!s.partition.empty()) argv.push_back("--partition=" + s.partition);
  if (!s.time.empty()) argv.push_back("--time=" + s.time);
  if (!s.mem.empty()) argv.push_back("--mem=" + s.mem);
  if (s.gpus > 0) argv.push_back("--gpus-per-task=" + std::to_string(s.gpus));
  argv.push_back(dir + "/" + script);
  const ProcessResult r = checked(argv);
  std::string id = first_line(r.out);
  if (const size_t semi = id.find(';'); semi != std::string::npos) id.resize(semi);  // cluster
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw Error("sbatch", "unexpected reply: " + first_line(r.out));
  return id;
}

std::map<int, std::string> slurm_task_states(const std::string& job) {
  // %K: the array index; -r: one line per task, pending ones too.
  const std::vector<std::string> argv = {"squeue", "-h", "-r", "-j", job, "-o", "%K %T"};
  const ProcessResult r = run_process(argv);
  std::map<int, std::string> states;
  // A job that left the controller's memory is "invalid" to squeue: none of it is queued.
  if (r.exit_code != 0 && r.err.find("Invalid job id") != std::string::npos) return states;
  if (r.exit_code != 0) checked(argv);  // throws with squeue's message
  std::istringstream lines(r.out);
  std::string index, state;
  while (lines >> index >> state)
    if (index.find_first_not_of("0123456789") == std::string::npos && !index.empty())
      states[std::stoi(index)] = state;
  return states;
}

void slurm_cancel(const std::string& job, int index) {
  checked({"scancel", index < 0 ? job : job + "_" + std::to_string(index)});
}

}  // namespace mcw
