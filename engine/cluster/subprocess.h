// Runs another program and collects what it prints: the cluster backend's sbatch, squeue
// and scancel. No shell is involved (arguments go through as they are), stdin is
// /dev/null, and stdout and stderr are read together so that neither pipe can fill up.
#pragma once
#include <string>
#include <vector>

namespace mcw {

struct ProcessResult {
  int exit_code = -1;  // 127: the program was not found; 128 + n: killed by signal n
  std::string out, err;
};

// argv[0] is looked up on PATH. Throws mcw::Error when the process cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv);

}  // namespace mcw
