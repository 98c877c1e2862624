// `mcw run --on slurm` against a real single-node Slurm that each test starts in its own
// scratch directory (munged, slurmctld and slurmd from Debian's munge and slurm-wlm, on
// free ports, stopped after) and the cluster job pieces under it: the sweep's results equal
// a local run's, a failing task is reported with its log and its failed run merged, a
// cancelled array ends, and a truncated result file is an error naming it.
// Skipped where Slurm is not installed (installer/deps-debian.sh installs it) or the test
// is not root (slurmd starts jobs as their submitter).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/cluster/cluster_job.h"
#include "engine/cluster/cluster_runs.h"
#include "engine/cluster/subprocess.h"
#include "engine/core/error.h"
#include "engine/runs/run_store.h"
#include "tests/cli/cli_test_util.h"

namespace fs = std::filesystem;
using namespace mcw;
using namespace mcw::test;

namespace {

int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

// The controller must be named as this host calls itself (its short name).
std::string host_name() {
  char h[256] = {};
  gethostname(h, sizeof h - 1);
  std::string s = h;
  return s.substr(0, s.find('.'));
}

bool on_path(const std::string& tool) {
  return run_process({"sh", "-c", "command -v " + tool}).exit_code == 0;
}

class SlurmCluster : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool :
         {"munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo"})
      if (!on_path(tool)) GTEST_SKIP() << tool << " is not installed";
    if (geteuid() != 0) GTEST_SKIP() << "slurmd needs root to start jobs";
    // The daemons' files in a short directory of their own: the sockets slurmd, slurmstepd
    // and munged create there must fit in 108 bytes, which the sandbox's scratch paths do not.
    char short_dir[] = "/tmp/mcw-slurm-XXXXXX";
    ASSERT_NE(mkdtemp(short_dir), nullptr);
    dir_ = short_dir;
    const fs::path m = dir_ / "munge";
    fs::create_directories(m);
    fs::permissions(m, fs::perms::owner_all, fs::perm_options::replace);
    {
      std::ofstream key(m / "munge.key", std::ios::binary);
      std::ifstream rnd("/dev/urandom", std::ios::binary);
      char b[1024];
      rnd.read(b, sizeof b);
      key.write(b, sizeof b);
    }
    fs::permissions(m / "munge.key", fs::perms::owner_read, fs::perm_options::replace);
    socket_ = (m / "sock").string();
    conf_ = (dir_ / "slurm.conf").string();
    started_ = true;  // from here on, TearDown stops what was started
    const ProcessResult munged = run_process(
        {"munged", "-f", "--socket=" + socket_, "--key-file=" + (m / "munge.key").string(),
         "--log-file=" + (m / "log").string(), "--pid-file=" + (m / "pid").string(),
         "--seed-file=" + (m / "seed").string()});
    ASSERT_EQ(munged.exit_code, 0) << munged.err;
    for (const char* d : {"state", "spool", "log"}) fs::create_directories(dir_ / d);
    const std::string d = dir_.string();
    std::ofstream(conf_)
        << "ClusterName=mcwtest" << getpid() << "\n"
        << "SlurmctldHost=" << host_name() << "(127.0.0.1)\n"
        << "SlurmctldPort=" << free_port() << "\nSlurmdPort=" << free_port()
        << "\nAuthType=auth/munge\nAuthInfo=socket=" << socket_
        << "\nCredType=cred/munge\nSlurmUser=root\nSlurmdUser=root\n"
        << "StateSaveLocation=" << d << "/state\nSlurmdSpoolDir=" << d << "/spool\n"
        << "SlurmctldPidFile=" << d << "/slurmctld.pid\nSlurmdPidFile=" << d
        << "/slurmd.pid\nSlurmctldLogFile=" << d << "/log/slurmctld.log\n"
        << "SlurmdLogFile=" << d << "/log/slurmd.log\n"
        << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
        << "MpiDefault=none\nSelectType=select/cons_tres\n"
        << "SelectTypeParameters=CR_Core\nReturnToService=2\nMinJobAge=600\n"
        << "JobCompType=jobcomp/none\nAccountingStorageType=accounting_storage/none\n"
        << "NodeName=mcwnode NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n"
        << "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n";
    setenv("SLURM_CONF", conf_.c_str(), 1);
    for (const std::vector<std::string>& daemon :
         {std::vector<std::string>{"slurmctld", "-f", conf_},
          std::vector<std::string>{"slurmd", "-f", conf_, "-N", "mcwnode"}}) {
      const ProcessResult started = run_process(daemon);
      ASSERT_EQ(started.exit_code, 0) << daemon[0] << ": " << started.err;
    }
    // Up to 30 s for the node to register (sinfo itself may wait on a controller).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (run_process({"timeout", "5", "sinfo", "-h", "-o", "%T"}).out.find("idle") !=
          std::string::npos)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "the test cluster did not come up: " << slurp(dir_ / "log" / "slurmctld.log")
           << slurp(dir_ / "log" / "slurmd.log");
  }

  // The daemons this test started (their command lines name its files): stopped with
  // SIGTERM, and SIGKILL after 10 s; munged last, since slurmctld saves its state through it.
  void TearDown() override {
    if (!started_) return;
    for (const std::string& files : {conf_, socket_}) {
      if (files.size() < 16) continue;  // never a pattern that could match other processes
      run_process({"pkill", "-TERM", "-f", files});
      for (int k = 0; k < 100 && run_process({"pgrep", "-f", files}).exit_code == 0; ++k)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      run_process({"pkill", "-KILL", "-f", files});
    }
    unsetenv("SLURM_CONF");
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A project over the tiny model with two recipes (and a third that fails, if asked).
  std::string project(const fs::path& dir, const std::string& db, bool failing = false) {
    Project p = tiny_project(dir, "slurmtest");
    p.recipes = {{"w4", "", "stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 0\n"},
                 {"sparse", "", "stages:\n  - algorithm: magnitude\n    sparsity: 0.5\n"}};
    if (failing) p.recipes.push_back({"broken", (dir / "missing.yaml").string(), ""});
    p.database_path = (dir / db).string();
    const std::string file = (dir / (db + ".mcwproj")).string();
    save_project(p, file);
    return file;
  }

  fs::path dir_;
  std::string socket_, conf_;
  bool started_ = false;
};

std::map<std::string, RunRecord> runs_by_recipe(const std::string& db) {
  const auto store = RunStore::open_existing(db);
  std::map<std::string, RunRecord> out;
  for (const RunRecord& r : store->load_runs_with_metrics()) out[r.info.recipe_name] = r;
  return out;
}

}  // namespace

TEST_F(SlurmCluster, SweepEqualsTheLocalRunAndMergesIntoTheProject) {
  const fs::path work = fresh_dir("sweep");
  const Result local = run_mcw("run " + project(work, "local.mcwdb"));
  ASSERT_EQ(local.code, 0) << local.err;
  const Result cluster = run_mcw("run " + project(work, "cluster.mcwdb") + " --on slurm");
  ASSERT_EQ(cluster.code, 0) << cluster.err << cluster.out;
  EXPECT_NE(cluster.out.find("submitted Slurm job"), std::string::npos) << cluster.out;
  const auto a = runs_by_recipe((work / "local.mcwdb").string());
  const auto b = runs_by_recipe((work / "cluster.mcwdb").string());
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);  // baseline, w4, sparse
  for (const auto& [recipe, run] : a) {
    const RunRecord& other = b.at(recipe);
    EXPECT_EQ(other.info.status, RunStatus::Done) << recipe;
    for (const char* m : {"perplexity", "kl", "top1", "bits_per_weight"}) {
      ASSERT_TRUE(run.metric(m).has_value()) << recipe << " " << m;
      EXPECT_EQ(run.metric(m), other.metric(m)) << recipe << " " << m;  // same numbers
    }
  }
}

TEST_F(SlurmCluster, AFailedTaskIsReportedWithItsLogAndItsRunMerged) {
  const fs::path work = fresh_dir("failing");
  const Result r =
      run_mcw("run " + project(work, "p.mcwdb", true) + " --recipe broken --recipe w4 --on slurm");
  EXPECT_EQ(r.code, 1) << r.err << r.out;
  EXPECT_NE(r.err.find("(broken) failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing.yaml"), std::string::npos) << r.err;  // the run's error
  const auto runs = runs_by_recipe((work / "p.mcwdb").string());
  ASSERT_EQ(runs.count("broken"), 1u);
  EXPECT_EQ(runs.at("broken").info.status, RunStatus::Failed);
  EXPECT_EQ(runs.at("w4").info.status, RunStatus::Done);
}

TEST_F(SlurmCluster, ACancelledArrayEndsAndATruncatedResultIsRefused) {
  const fs::path work = fresh_dir("cancel");
  const std::string job_dir = (work / "job").string();
  write_cluster_job(job_dir,
                    {{"sleep-a", {"/bin/sleep", "60"}}, {"sleep-b", {"/bin/sleep", "60"}}});
  const std::string id = submit_cluster_job(job_dir, {});
  ClusterJobWatcher watcher(job_dir);
  slurm_cancel(id);
  bool over = false;
  for (int k = 0; k < 200 && !over; ++k) {  // up to 20 s
    over = true;
    for (const ClusterTaskStatus& t : watcher.poll()) over &= t.state == ClusterTaskState::Failed;
    if (!over) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(over) << "the cancelled tasks never ended";

  // A result store cut short, as a task killed while copying it would leave.
  const fs::path good = work / "good.sqlite";
  {
    const auto s = RunStore::open(good.string());
    RunInfo info;
    info.recipe_name = "x";
    s->set_status(s->create_run(info), RunStatus::Done);
  }
  const std::string bytes = slurp(good);
  write_bytes((work / "cut.sqlite").string(), bytes.substr(0, bytes.size() / 2));
  const auto store = RunStore::open((work / "p.mcwdb").string());
  EXPECT_EQ(merge_task_runs(*store, good.string()).size(), 1u);
  EXPECT_EQ(merge_task_runs(*store, good.string()).size(), 1u);  // twice: still one run
  EXPECT_EQ(store->list_runs().size(), 1u);
  try {
    merge_task_runs(*store, (work / "cut.sqlite").string());
    FAIL() << "a truncated result was merged";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.sqlite"), std::string::npos) << e.what();
  }
}

TEST_F(SlurmCluster, AJobIsFollowedFromItsDirectoryAndItsFailedTasksRetried) {
  const fs::path work = fresh_dir("retry");
  const std::string proj = project(work, "p.mcwdb", true);
  const Result submitted =
      run_mcw("run " + proj + " --recipe broken --no-baseline --on slurm --no-wait");
  ASSERT_EQ(submitted.code, 0) << submitted.err;
  const size_t at = submitted.out.find("files in ");
  ASSERT_NE(at, std::string::npos) << submitted.out;
  std::string job_dir = submitted.out.substr(at + 9);
  job_dir.resize(job_dir.find('\n'));

  const Result followed = run_mcw("run " + proj + " --follow " + job_dir);  // as after a restart
  EXPECT_EQ(followed.code, 1) << followed.err << followed.out;
  EXPECT_NE(followed.err.find("missing.yaml"), std::string::npos) << followed.err;

  std::ofstream(work / "missing.yaml")
      << "stages:\n  - algorithm: rtn\n    bits: 8\n    group_size: 0\n";
  const Result retried = run_mcw("run " + proj + " --retry " + job_dir);
  EXPECT_EQ(retried.code, 0) << retried.err << retried.out;
  EXPECT_NE(retried.out.find("resubmitted 1 task(s)"), std::string::npos) << retried.out;
  const auto store = RunStore::open_existing((work / "p.mcwdb").string());
  std::vector<RunStatus> broken;
  for (const RunInfo& r : store->list_runs())
    if (r.recipe_name == "broken") broken.push_back(r.status);
  ASSERT_EQ(broken.size(), 2u);  // newest first: the retry's run, then the failed one
  EXPECT_EQ(broken[0], RunStatus::Done);
  EXPECT_EQ(broken[1], RunStatus::Failed);
  const Result again = run_mcw("run " + proj + " --retry " + job_dir);
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("resubmitted 0 task(s)"), std::string::npos) << again.out;
}

TEST_F(SlurmCluster, AScanOnTheClusterEqualsTheLocalScan) {
  const fs::path work = fresh_dir("scan");
  const std::string options = " --settings w4,s50 --windows 1 --window 16 --json";
  const Result local = run_mcw("sensitivity " + project(work, "local.mcwdb") + options);
  ASSERT_EQ(local.code, 0) << local.err;
  const Result cluster =
      run_mcw("sensitivity " + project(work, "cluster.mcwdb") + options + " --on slurm --tasks 2");
  ASSERT_EQ(cluster.code, 0) << cluster.err << cluster.out;
  EXPECT_NE(cluster.err.find("submitted Slurm job"), std::string::npos) << cluster.err;
  const auto a = nlohmann::json::parse(local.out), b = nlohmann::json::parse(cluster.out);
  EXPECT_EQ(a["layers"], b["layers"]);
  EXPECT_EQ(a["kl"], b["kl"]);  // the same numbers, computed on the nodes
  EXPECT_EQ(b["computed"], 0);  // every cell came from the tasks' merged results
  EXPECT_EQ(b["cached"], a["computed"]);
  EXPECT_GT(a["computed"].get<int>(), 0);
}

TEST_F(SlurmCluster, TheProjectsSavedSettingsReachSbatchUnlessOverridden) {
  const fs::path work = fresh_dir("settings");
  const std::string proj = project(work, "p.mcwdb");
  Project p = load_project(proj);
  p.cluster.partition = "nosuchpartition";
  save_project(p, proj);
  const Result refused = run_mcw("run " + proj + " --recipe w4 --no-baseline --on slurm");
  EXPECT_EQ(refused.code, 1) << refused.out;
  EXPECT_NE(refused.err.find("sbatch"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("partition"), std::string::npos) << refused.err;
  const Result ok =
      run_mcw("run " + proj + " --recipe w4 --no-baseline --on slurm --partition debug");
  EXPECT_EQ(ok.code, 0) << ok.err;
}
