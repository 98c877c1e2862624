// The cluster job's pieces that need no Slurm (the rest: tests/cli/test_cli_slurm.cpp, on
// a single-node Slurm of its own): the job directory as written, a task's result path,
// the scan's layer batches, and the refusals.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "engine/cluster/cluster_job.h"
#include "engine/cluster/cluster_runs.h"
#include "engine/cluster/subprocess.h"
#include "engine/core/error.h"

namespace fs = std::filesystem;
using namespace mcw;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path d =
      fs::path(testing::TempDir()) / ("mcw_cluster_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(ClusterJob, WritesTasksAsNulSeparatedArgumentsAndAnExecutableScript) {
  const fs::path dir = scratch("write") / "job";
  write_cluster_job(dir.string(), {{"first", {"/bin/echo", "a b", "it's \"quoted\""}},
                                   {"second", {"/bin/true"}}});
  EXPECT_EQ(slurp(dir / "tasks" / "0.argv"), std::string("/bin/echo\0a b\0it's \"quoted\"\0", 28));
  EXPECT_EQ(cluster_task_names(dir.string()), (std::vector<std::string>{"first", "second"}));
  EXPECT_TRUE((fs::status(dir / "job.sh").permissions() & fs::perms::owner_exec) !=
              fs::perms::none);
  EXPECT_EQ(cluster_result_path(dir.string(), 1, "sqlite"),
            (dir / "results" / "1.sqlite").string());
  EXPECT_EQ(cluster_job_id(dir.string()), "");  // not submitted

  // The script itself, run as Slurm would run task 0 (bash, in the directory, the index in
  // the environment): the task's output, then its exit status by rename.
  const ProcessResult r =
      run_process({"sh", "-c", "cd '" + dir.string() + "' && SLURM_ARRAY_TASK_ID=0 bash job.sh"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a b it's \"quoted\"\n");
  EXPECT_EQ(slurp(dir / "results" / "0.exit"), "0\n");
  EXPECT_FALSE(fs::exists(dir / "results" / "0.exit.tmp"));
}

TEST(ClusterJob, RefusesAnExistingDirectoryNoTasksAndNulBytes) {
  const fs::path base = scratch("refuse");
  EXPECT_THROW(write_cluster_job(base.string(), {{"t", {"/bin/true"}}}), Error);  // exists
  EXPECT_THROW(write_cluster_job((base / "empty").string(), {}), Error);
  EXPECT_THROW(write_cluster_job((base / "nul").string(), {{"t", {std::string("a\0b", 3)}}}),
               Error);
  EXPECT_THROW(cluster_task_names((base / "none").string()), Error);
}

TEST(ClusterJob, ScanBatchesAreContiguousAndEven) {
  const std::vector<std::string> blocks = {"0.", "1.", "2.", "3.", "4."};
  EXPECT_EQ(scan_layer_batches(blocks, 2), (std::vector<std::string>{"0.,1.", "2.,3.,4."}));
  EXPECT_EQ(scan_layer_batches(blocks, 5).size(), 5u);
  EXPECT_EQ(scan_layer_batches(blocks, 9).size(), 5u);  // at most one per prefix
  EXPECT_EQ(scan_layer_batches(blocks, 0), (std::vector<std::string>{"0.,1.,2.,3.,4."}));
}

TEST(ClusterJob, AProgramThatIsNotThereIsExitStatus127) {
  const ProcessResult r = run_process({"mcw-no-such-program-here"});
  EXPECT_EQ(r.exit_code, 127);
  const ProcessResult e = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(e.exit_code, 3);
  EXPECT_EQ(e.out, "out\n");
  EXPECT_EQ(e.err, "err\n");
}
