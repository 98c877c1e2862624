// The run store shared between connections, threads and processes: readers see whole
// transactions while a writer writes, concurrent writers wait for each other, and a
// process killed with SIGKILL mid-run leaves a sound file whose run reads `interrupted`,
// but only once the process is really gone.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "engine/runs/run_store.h"
#include "temp_files.h"

using namespace mcw;

namespace {

RunInfo sample_run(const std::string& recipe) {
  RunInfo r;
  r.project = "p";
  r.model_fingerprint = "fp";
  r.recipe_name = recipe;
  return r;
}

// prefix + i, written so that GCC 12 does not warn (-Wrestrict false positive on
// "literal" + std::string).
std::string numbered(std::string prefix, int i) { return prefix.append(std::to_string(i)); }

std::string integrity(const std::string& path) {
  SqliteDb db(path, false);
  Statement q(db, "PRAGMA integrity_check");
  return q.step() ? q.text(0) : "no answer";
}

}  // namespace

TEST(RunStoreProcesses, ReaderSeesWholeTransactions) {
  const std::string path = (test::fresh_temp_dir() / "runs.mcwdb").string();
  const auto writer = RunStore::open(path);
  const auto reader = RunStore::open(path);
  const int64_t id = writer->create_run(sample_run("w"));
  constexpr int kBatches = 400, kPerBatch = 8;
  std::atomic<bool> done{false};
  std::thread t([&] {
    for (int b = 0; b < kBatches; ++b) {
      std::vector<Metric> ms;
      std::vector<LayerMetric> ls;
      for (int i = 0; i < kPerBatch; ++i) {
        const std::string n = numbered(numbered("m", b) + "_", i);
        ms.push_back({n, double(b)});
        ls.push_back({numbered("layer", b), n, double(i)});
      }
      // Metrics and layer metrics in two statements of one transaction.
      writer->batch([&] {
        writer->add_metrics(id, ms);
        writer->add_layer_metrics(id, ls);
      });
    }
    done = true;
  });
  int reads = 0;
  while (!done) {
    const auto r = reader->get_run(id);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->metrics.size() % kPerBatch, 0u);
    ASSERT_EQ(r->metrics.size(), r->layers.size()) << "metrics and layers from different moments";
    const auto all = reader->load_runs_with_metrics();
    ASSERT_EQ(all.size(), 1u);
    ASSERT_EQ(all[0].metrics.size() % kPerBatch, 0u);
    ++reads;
  }
  t.join();
  EXPECT_EQ(reader->get_run(id)->metrics.size(), size_t(kBatches * kPerBatch));
  EXPECT_GT(reads, 0);
}

TEST(RunStoreProcesses, ConcurrentWritersWaitForEachOther) {
  const std::string path = (test::fresh_temp_dir() / "runs.mcwdb").string();
  RunStore::open(path);
  std::vector<std::thread> ts;
  for (int w = 0; w < 3; ++w)
    ts.emplace_back([&, w] {
      const auto s = RunStore::open(path);  // each writer its own connection
      for (int i = 0; i < 30; ++i) {
        const int64_t id = s->create_run(sample_run(numbered("w", w)));
        s->add_metrics(id, {{"a", 1}, {"b", 2}});
        s->set_status(id, RunStatus::Done);
      }
    });
  for (auto& t : ts) t.join();
  const auto s = RunStore::open(path);
  const auto runs = s->load_runs_with_metrics({"p", RunStatus::Done});
  EXPECT_EQ(runs.size(), 90u);
  for (const auto& r : runs) EXPECT_EQ(r.metrics.size(), 2u);
}

TEST(RunStoreProcesses, SigkillMidRunLeavesAnInterruptedRun) {
  const std::string path = (test::fresh_temp_dir() / "runs.mcwdb").string();
  RunStore::open(path);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    try {
      const auto s = RunStore::open(path);
      const int64_t id = s->create_run(sample_run("killed"));
      if (write(fds[1], &id, sizeof id) != sizeof id) _exit(3);
      // Keep writing, a transaction at a time, until killed.
      for (int b = 0;; ++b) s->add_metrics(id, {{numbered("x", b), 1}, {numbered("y", b), 2}});
    } catch (...) {
      _exit(4);
    }
  }
  close(fds[1]);
  int64_t id = 0;
  ASSERT_EQ(read(fds[0], &id, sizeof id), ssize_t(sizeof id));
  close(fds[0]);
  {
    // While the child lives, another opener must leave its run alone.
    const auto live = RunStore::open(path);
    EXPECT_EQ(live->stale_runs_marked(), 0);
    EXPECT_EQ(live->get_run(id)->info.status, RunStatus::Running);
  }
  usleep(50 * 1000);
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);

  const auto store = RunStore::open(path);
  EXPECT_EQ(store->stale_runs_marked(), 1);
  EXPECT_EQ(integrity(path), "ok");
  const auto r = store->get_run(id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->info.status, RunStatus::Interrupted);
  EXPECT_GT(r->info.ended_at, 0);
  EXPECT_NE(r->info.error.find("crash or kill"), std::string::npos);
  EXPECT_EQ(r->metrics.size() % 2, 0u);  // whole transactions only
  EXPECT_GT(r->metrics.size(), 0u);
  EXPECT_EQ(RunStore::open(path)->stale_runs_marked(), 0);  // done once
}

TEST(RunStoreProcesses, RunsOfAnotherHostAreLeftAlone) {
  const std::string path = (test::fresh_temp_dir() / "runs.mcwdb").string();
  const auto s = RunStore::open(path);
  RunInfo r = sample_run("remote");
  r.host = "some-other-machine";
  r.pid = 999999999;  // no such process here, but it is not a pid of this host either
  const int64_t remote = s->create_run(r);
  RunInfo local = sample_run("local-dead");
  local.pid = 999999999;
  const int64_t dead = s->create_run(local);
  const auto again = RunStore::open(path);
  EXPECT_EQ(again->get_run(remote)->info.status, RunStatus::Running);
  EXPECT_EQ(again->get_run(dead)->info.status, RunStatus::Interrupted);
}
