// The run store on one connection: round trips, status rules, bound parameters, the
// sensitivity cache, artifacts, migrations and refusing files it must not touch.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <filesystem>
#include <random>

#include "engine/core/error.h"
#include "engine/core/sha256.h"
#include "engine/runs/run_schema.h"
#include "engine/runs/run_store.h"
#include "temp_files.h"

using namespace mcw;

namespace {

RunInfo sample_run(const std::string& recipe = "w4", const std::string& project = "demo") {
  RunInfo r;
  r.project = project;
  r.model_fingerprint = "abc123";
  r.recipe_name = recipe;
  r.recipe_text = "stages:\n  - algorithm: rtn\n";
  r.status = RunStatus::Running;
  return r;
}

std::string db_path(const std::filesystem::path& dir) { return (dir / "runs.mcwdb").string(); }

void expect_error_naming(const std::function<void()>& fn, const std::string& file,
                         const std::string& phrase) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), file);
    EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(RunStore, CreateAndReadBack) {
  const auto path = db_path(test::fresh_temp_dir());
  const auto store = RunStore::open(path);
  const int64_t id = store->create_run(sample_run());
  store->add_metrics(id, {{"perplexity", 12.5}, {"kl", 0.01}});
  store->add_metric(id, "top1", 0.97);
  // Layers come back in the order recorded, not sorted by name.
  store->add_layer_metrics(
      id, {{"blk.2.q", "relative_error", 0.2}, {"blk.10.q", "relative_error", 0.1}});
  store->set_status(id, RunStatus::Done);

  const auto r = store->get_run(id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->info.project, "demo");
  EXPECT_EQ(r->info.recipe_name, "w4");
  EXPECT_EQ(r->info.recipe_text, "stages:\n  - algorithm: rtn\n");
  EXPECT_EQ(r->info.status, RunStatus::Done);
  EXPECT_EQ(r->info.uuid.size(), 36u);
  EXPECT_EQ(r->info.uuid[14], '4');
  EXPECT_EQ(r->info.mcw_version, MCW_VERSION);
  EXPECT_EQ(r->info.pid, int64_t(getpid()));
  EXPECT_FALSE(r->info.host.empty());
  EXPECT_GT(r->info.started_at, 1.6e9);
  EXPECT_GE(r->info.ended_at, r->info.started_at);
  ASSERT_EQ(r->metrics.size(), 3u);
  EXPECT_EQ(r->metrics[0].name, "perplexity");
  EXPECT_EQ(*r->metric("kl"), 0.01);
  EXPECT_EQ(*r->metric("top1"), 0.97);
  EXPECT_FALSE(r->metric("latency"));
  ASSERT_EQ(r->layers.size(), 2u);
  EXPECT_EQ(r->layers[0].layer, "blk.2.q");
  EXPECT_EQ(r->layers[1].value, 0.1);
  EXPECT_FALSE(store->get_run(id + 1));

  // A metric recorded again replaces the old value.
  store->add_metric(id, "kl", 0.02);
  EXPECT_EQ(*store->get_run(id)->metric("kl"), 0.02);
  EXPECT_EQ(store->get_run(id)->metrics.size(), 3u);
  EXPECT_THROW(store->add_metric(id + 5, "x", 1), Error);  // no such run
}

TEST(RunStore, ListFiltersAndNewestFirst) {
  const auto store = RunStore::open(db_path(test::fresh_temp_dir()));
  const int64_t a = store->create_run(sample_run("a", "p1"));
  const int64_t b = store->create_run(sample_run("b", "p1"));
  const int64_t c = store->create_run(sample_run("c", "p2"));
  store->set_status(b, RunStatus::Done);
  store->add_metric(b, "perplexity", 3);
  EXPECT_EQ(store->list_runs().size(), 3u);
  EXPECT_EQ(store->list_runs()[0].id, c);
  const auto p1 = store->list_runs({"p1", std::nullopt});
  ASSERT_EQ(p1.size(), 2u);
  EXPECT_EQ(p1[0].id, b);
  EXPECT_EQ(p1[1].id, a);
  const auto done = store->load_runs_with_metrics({"", RunStatus::Done});
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].info.recipe_name, "b");
  EXPECT_EQ(*done[0].metric("perplexity"), 3);
  EXPECT_EQ(store->find_run("p1", "b", RunStatus::Done)->id, b);
  EXPECT_FALSE(store->find_run("p2", "b", RunStatus::Done));
}

TEST(RunStore, StatusTransitions) {
  const auto path = db_path(test::fresh_temp_dir());
  const auto store = RunStore::open(path);
  RunInfo q = sample_run();
  q.status = RunStatus::Queued;
  const int64_t id = store->create_run(q);
  EXPECT_EQ(store->get_run(id)->info.started_at, 0);
  expect_error_naming([&] { store->set_status(id, RunStatus::Done); }, path,
                      "cannot go from queued to done");
  store->set_status(id, RunStatus::Running);
  EXPECT_GT(store->get_run(id)->info.started_at, 0);
  EXPECT_EQ(store->get_run(id)->info.ended_at, 0);
  store->set_status(id, RunStatus::Failed, "out of memory");
  const auto r = store->get_run(id);
  EXPECT_EQ(r->info.status, RunStatus::Failed);
  EXPECT_EQ(r->info.error, "out of memory");
  EXPECT_GT(r->info.ended_at, 0);
  // Final states are final.
  for (RunStatus s : {RunStatus::Running, RunStatus::Done, RunStatus::Cancelled})
    EXPECT_THROW(store->set_status(id, s), Error);
  expect_error_naming([&] { store->set_status(999, RunStatus::Done); }, path, "no run with id 999");
  for (int from = 0; from < 6; ++from)
    for (int to = 0; to < 6; ++to) {
      const bool want = (from == 0 && (to == 1 || to == 4)) || (from == 1 && to >= 2);
      EXPECT_EQ(run_status_transition_allowed(RunStatus(from), RunStatus(to)), want) << from << to;
    }
  EXPECT_EQ(run_status_from_name("interrupted"), RunStatus::Interrupted);
  EXPECT_FALSE(run_status_from_name("Done"));
}

TEST(RunStore, HostileTextIsStoredVerbatim) {
  const auto dir = test::fresh_temp_dir();
  const auto store = RunStore::open(db_path(dir));
  const std::string nasty =
      "it's a \"test\"; '); DROP TABLE runs; --\n\\ % _ \xe2\x9c\x93 ?1 :x @y";
  RunInfo r = sample_run(nasty, nasty);
  r.recipe_text = nasty + std::string("\0after-nul", 10);
  const int64_t id = store->create_run(r);
  store->add_metric(id, nasty, 1.5);
  store->add_layer_metrics(id, {{nasty, nasty, 2.5}});
  store->set_notes(id, nasty);
  store->put_sensitivity(nasty, {nasty, nasty, nasty, 3.5});
  const auto back = store->get_run(id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->info.recipe_name, nasty);
  EXPECT_EQ(back->info.project, nasty);
  EXPECT_EQ(back->info.recipe_text, r.recipe_text);  // even past a NUL byte
  EXPECT_EQ(back->info.notes, nasty);
  EXPECT_EQ(back->metrics[0].name, nasty);
  EXPECT_EQ(back->layers[0].layer, nasty);
  EXPECT_EQ(*store->get_sensitivity(nasty, nasty, nasty, nasty), 3.5);
  EXPECT_EQ(store->list_runs({nasty, std::nullopt}).size(), 1u);
  EXPECT_EQ(store->list_runs({"it's", std::nullopt}).size(), 0u);  // no LIKE, no injection
  const auto again = RunStore::open(db_path(dir));                 // the runs table is still there
  EXPECT_EQ(again->list_runs().size(), 1u);
}

TEST(RunStore, SensitivityCache) {
  const auto store = RunStore::open(db_path(test::fresh_temp_dir()));
  EXPECT_FALSE(store->get_sensitivity("fp", "blk.0.q", "w4", "kl"));
  store->put_sensitivities(
      "fp",
      {{"blk.0.q", "w4", "kl", 0.1}, {"blk.0.q", "w2", "kl", 0.9}, {"blk.1.q", "w4", "kl", 0.2}});
  store->put_sensitivity("other", {"blk.0.q", "w4", "kl", 7});
  EXPECT_EQ(*store->get_sensitivity("fp", "blk.0.q", "w4", "kl"), 0.1);
  store->put_sensitivity("fp", {"blk.0.q", "w4", "kl", 0.15});  // replaces
  EXPECT_EQ(*store->get_sensitivity("fp", "blk.0.q", "w4", "kl"), 0.15);
  const auto all = store->list_sensitivity("fp");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].setting, "w2");  // ordered by layer, setting, metric
  EXPECT_EQ(all[2].layer, "blk.1.q");
  EXPECT_EQ(*store->get_sensitivity("other", "blk.0.q", "w4", "kl"), 7);
}

TEST(RunStore, ArtifactsCarryTheirHash) {
  const auto dir = test::fresh_temp_dir();
  const auto store = RunStore::open(db_path(dir));
  const int64_t id = store->create_run(sample_run());
  test::write_bytes(dir / "model.gguf", "abc");
  store->add_artifact(id, "gguf", (dir / "model.gguf").string());
  const auto r = store->get_run(id);
  ASSERT_EQ(r->artifacts.size(), 1u);
  EXPECT_EQ(r->artifacts[0].kind, "gguf");
  EXPECT_EQ(r->artifacts[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(r->artifacts[0].bytes, 3u);
  EXPECT_THROW(store->add_artifact(id, "gguf", (dir / "missing").string()), Error);
}

TEST(RunStore, BatchIsAllOrNothing) {
  const auto store = RunStore::open(db_path(test::fresh_temp_dir()));
  const int64_t id = store->create_run(sample_run());
  EXPECT_THROW(store->batch([&] {
    store->add_metrics(id, {{"a", 1}, {"b", 2}});
    store->set_status(id, RunStatus::Queued);  // not allowed: throws inside the batch
  }),
               Error);
  const auto r = store->get_run(id);
  EXPECT_TRUE(r->metrics.empty());
  EXPECT_EQ(r->info.status, RunStatus::Running);
  store->batch([&] { store->add_metrics(id, {{"a", 1}}); });
  EXPECT_EQ(store->get_run(id)->metrics.size(), 1u);
}

TEST(RunStore, MigratesFromTheFirstSchema) {
  const auto path = db_path(test::fresh_temp_dir());
  {
    SqliteDb db(path, true);
    migrate_run_store(db, 1);
    EXPECT_EQ(run_store_version(db), 1);
    Statement ins(db,
                  "INSERT INTO runs (uuid, project, model_fingerprint, recipe_name, recipe_text, "
                  "status, host, cpu, pid, process_tag, mcw_version) "
                  "VALUES (?, ?, ?, ?, ?, 'done', 'h', 'c', 1, '', '0.0.1')");
    ins.bind(1, "u-1").bind(2, "old").bind(3, "fp").bind(4, "w8").bind(5, "text").run();
    Statement m(db, "INSERT INTO metrics (run, name, value) VALUES (1, 'perplexity', 9.5)");
    m.run();
  }
  const auto store = RunStore::open(path);
  const auto r = store->get_run(1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->info.recipe_name, "w8");
  EXPECT_EQ(r->info.status, RunStatus::Done);
  EXPECT_EQ(r->info.notes, "");  // the v2 column, with its default
  EXPECT_EQ(*r->metric("perplexity"), 9.5);
  store->set_notes(1, "kept");
  EXPECT_EQ(store->get_run(1)->info.notes, "kept");
  EXPECT_TRUE(store->load_curve(1).empty());  // the v3 table, empty for an old run
  store->add_curve(1,
                   {{"eval_kl", 0, 0.5}, {"loss", 1, 2.0}, {"eval_kl", 2, 0.25}, {"loss", 1, 1.5}});
  const std::vector<CurvePoint> curve = store->load_curve(1);
  ASSERT_EQ(curve.size(), 3u);  // a step recorded again replaces its value
  EXPECT_EQ(curve[0].series, "eval_kl");
  EXPECT_EQ(curve[1].step, 2);
  EXPECT_EQ(curve[2].value, 1.5);
  EXPECT_THROW(store->add_curve(99, {{"loss", 1, 1.0}}), Error);
  SqliteDb db(path, false);
  EXPECT_EQ(run_store_version(db), run_store_latest_version());
  Statement idx(db,
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'artifacts_by_run'");
  EXPECT_TRUE(idx.step());
}

TEST(RunStore, RefusesANewerSchema) {
  const auto path = db_path(test::fresh_temp_dir());
  RunStore::open(path)->create_run(sample_run());
  {
    SqliteDb db(path, false);
    db.exec("UPDATE schema_version SET version = 99");
  }
  expect_error_naming([&] { RunStore::open(path); }, path,
                      "schema version 99, newer than this MCW");
}

// Damage, as the studio tells it apart from a busy store or a newer MCW's: noise and a
// real store whose pages were overwritten are damaged; a healthy store, one of a newer
// schema and a missing file are not. Setting a damaged store aside keeps its bytes.
TEST(RunStore, DamagedStoresAreToldApartAndSetAside) {
  const auto dir = test::fresh_temp_dir();
  std::mt19937 rng(10);
  const auto healthy = (dir / "healthy.mcwdb").string();
  { RunStore::open(healthy)->create_run(sample_run()); }
  EXPECT_FALSE(run_store_is_damaged(healthy));
  EXPECT_FALSE(run_store_is_damaged((dir / "none.mcwdb").string()));
  const auto newer = (dir / "newer.mcwdb").string();
  { RunStore::open(newer)->create_run(sample_run()); }
  { SqliteDb(newer, false).exec("UPDATE schema_version SET version = 99"); }
  EXPECT_FALSE(run_store_is_damaged(newer));

  std::string noise(8192, '\0');
  for (char& c : noise) c = char(rng());
  const auto noise_path = (dir / "noise.mcwdb").string();
  test::write_bytes(noise_path, noise);
  EXPECT_TRUE(run_store_is_damaged(noise_path));

  const auto damaged = db_path(dir);
  { RunStore::open(damaged)->create_run(sample_run()); }
  std::string bytes = test::read_bytes(damaged);
  for (size_t i = 4096; i < bytes.size(); ++i) bytes[i] = char(rng());
  std::filesystem::remove(damaged + "-wal");
  std::filesystem::remove(damaged + "-shm");
  test::write_bytes(damaged, bytes);
  ASSERT_TRUE(run_store_is_damaged(damaged));
  const std::string aside = set_aside_run_store(damaged);
  EXPECT_NE(aside.find(".damaged-"), std::string::npos);
  EXPECT_EQ(test::read_bytes(aside), bytes);  // kept as it was
  EXPECT_FALSE(std::filesystem::exists(damaged));
  EXPECT_TRUE(RunStore::open(damaged)->list_runs().empty());  // a fresh store in its place
}

TEST(RunStore, RefusesFilesThatAreNotRunDatabases) {
  const auto dir = test::fresh_temp_dir();
  std::mt19937 rng(9);
  std::string noise(8192, '\0');
  for (char& c : noise) c = char(rng());
  const auto noise_path = (dir / "noise.mcwdb").string();
  test::write_bytes(noise_path, noise);
  expect_error_naming([&] { RunStore::open(noise_path); }, noise_path, "not a database");

  // A real SQLite file with a valid header whose pages are garbage.
  const auto damaged = db_path(dir);
  { RunStore::open(damaged)->create_run(sample_run()); }
  std::string bytes = test::read_bytes(damaged);
  ASSERT_GT(bytes.size(), 4096u);
  for (size_t i = 100; i < bytes.size(); ++i) bytes[i] = char(rng());
  std::filesystem::remove(damaged + "-wal");
  std::filesystem::remove(damaged + "-shm");
  test::write_bytes(damaged, bytes);
  expect_error_naming([&] { RunStore::open(damaged); }, damaged, "");

  const auto other = (dir / "other.sqlite").string();
  { SqliteDb(other, true).exec("CREATE TABLE t (x)"); }
  expect_error_naming([&] { RunStore::open(other); }, other, "not an MCW run database");
  expect_error_naming([&] { RunStore::open_existing((dir / "none.mcwdb").string()); },
                      (dir / "none.mcwdb").string(), "no such run database");
}

// A full disk while a run is being recorded (the file-size limit makes SQLite's writes fail
// with EFBIG, which works even as root): an error naming the store, nothing half-written,
// and every run recorded before it intact, in this process and after a reopen.
TEST(RunStore, AFullDiskKeepsWhatWasStored) {
  namespace fs = std::filesystem;
  const fs::path dir = test::fresh_temp_dir();
  const auto path = db_path(dir);
  auto store = RunStore::open(path);
  const int64_t done = store->create_run(sample_run("w4"));
  store->add_metrics(done, {{"perplexity", 12.5}, {"kl", 0.01}});
  store->set_status(done, RunStatus::Done);
  const int64_t running = store->create_run(sample_run("w3"));

  uintmax_t largest = 0;
  for (const auto& e : fs::directory_iterator(dir)) largest = std::max(largest, e.file_size());
  std::vector<CurvePoint> curve;  // megabytes of points: more than the limit lets grow
  for (int64_t i = 0; i < 100000; ++i) curve.push_back({"loss", i, 1.0 / double(i + 1)});
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct rlimit small = old_limit;
  small.rlim_cur = largest + 64 * 1024;
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string error;
  try {
    store->add_curve(running, curve);
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), path);
    error = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(error.empty()) << "the write did not fail: the test's limit is too high";
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_NE(error.find("File too large"), std::string::npos) << error;  // the system's reason
  RecordProperty("error", error);

  // The same connection goes on once there is room again; the failed curve left nothing.
  EXPECT_TRUE(store->load_curve(running).empty());
  store->set_status(running, RunStatus::Failed, "disk full");
  store.reset();
  EXPECT_FALSE(run_store_is_damaged(path));
  const auto back = RunStore::open_existing(path);
  const auto r = back->get_run(done);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->info.status, RunStatus::Done);
  EXPECT_EQ(*r->metric("perplexity"), 12.5);
  EXPECT_EQ(back->get_run(running)->info.status, RunStatus::Failed);
  EXPECT_TRUE(back->load_curve(running).empty());
}
