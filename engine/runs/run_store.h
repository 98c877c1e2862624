// The run store: one SQLite file (WAL, foreign keys on) holding every run of a project,
// its recipe, metrics, per-layer metrics and artifacts, plus the sensitivity cache shared
// by runs on the same model. Several processes may open the same file: readers see a
// consistent snapshot while a run writes, and a run whose process died (crash, SIGKILL)
// reads `interrupted` the next time any process opens the store.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/runs/sqlite_db.h"

namespace mcw {

enum class RunStatus { Queued, Running, Done, Failed, Cancelled, Interrupted };
const char* run_status_name(RunStatus s);  // "queued", "running", ...
std::optional<RunStatus> run_status_from_name(std::string_view s);
bool run_status_final(RunStatus s);  // done, failed, cancelled, interrupted
// queued -> running | cancelled; running -> done | failed | cancelled | interrupted.
bool run_status_transition_allowed(RunStatus from, RunStatus to);

struct RunInfo {
  int64_t id = 0;    // assigned by create_run
  std::string uuid;  // assigned by create_run when empty
  std::string project, model_fingerprint, recipe_name, recipe_text;
  RunStatus status = RunStatus::Running;
  double started_at = 0, ended_at = 0;  // Unix seconds; 0 = not yet
  // Filled by create_run from the calling process when empty / zero.
  std::string host, cpu, mcw_version, process_tag;
  int64_t pid = 0;
  std::string error;  // why a run failed
  std::string notes;
};

struct Metric {
  std::string name;
  double value = 0;
};
struct LayerMetric {
  std::string layer, name;
  double value = 0;
};
// One value of a series a run records per step (a recovery curve: "loss", "eval_kl", ...).
struct CurvePoint {
  std::string series;
  int64_t step = 0;
  double value = 0;
};
struct Artifact {
  std::string kind, path, sha256;
  uint64_t bytes = 0;
};

struct RunRecord {
  RunInfo info;
  std::vector<Metric> metrics;      // in the order they were recorded
  std::vector<LayerMetric> layers;  // likewise (model order)
  std::vector<Artifact> artifacts;
  std::vector<CurvePoint> curve;  // get_run only
  std::optional<double> metric(std::string_view name) const;
};

struct RunFilter {
  std::string project;              // empty: every project
  std::optional<RunStatus> status;  // empty: every status
};

struct SensitivityEntry {
  std::string layer, setting, metric;
  double value = 0;
};

// True when `path` is a file SQLite cannot use as a database: damaged (a failed integrity
// check, a malformed page) or not a database at all. A store of a newer MCW is not damaged.
bool run_store_is_damaged(const std::string& path);
// Moves a damaged store and its -wal/-shm files aside to "<path>.damaged-<UTC time>" (kept,
// never deleted) so that a fresh store can start at `path`; returns the new name.
std::string set_aside_run_store(const std::string& path);

class RunStore {
 public:
  // Creates the file if needed, migrates it to the latest schema, turns on WAL, foreign
  // keys and a busy timeout, and marks `interrupted` the runs left `running` by processes
  // that are gone (same host only: a run of another host cannot be checked). Throws
  // mcw::Error naming the file for a damaged file, a file that is not a run database, or
  // one written by a newer MCW.
  static std::unique_ptr<RunStore> open(const std::string& path);
  // As open(), but a missing file is an error instead of a new store (`mcw runs`).
  static std::unique_ptr<RunStore> open_existing(const std::string& path);
  const std::string& path() const { return db_.path(); }
  int stale_runs_marked() const { return stale_marked_; }  // at open

  int64_t create_run(RunInfo info);
  // Throws mcw::Error for an unknown run or a transition run_status_transition_allowed
  // forbids. A final status sets ended_at.
  void set_status(int64_t run, RunStatus status, const std::string& error = {});
  void set_notes(int64_t run, const std::string& notes);
  void add_metric(int64_t run, const std::string& name, double value);
  void add_metrics(int64_t run, const std::vector<Metric>& metrics);  // one transaction
  void add_layer_metrics(int64_t run, const std::vector<LayerMetric>& metrics);
  void add_curve(int64_t run, const std::vector<CurvePoint>& points);  // one transaction
  std::vector<CurvePoint> load_curve(int64_t run);  // in the order recorded; empty: none
  // Hashes the file now (SHA-256) and records it with its size.
  void add_artifact(int64_t run, const std::string& kind, const std::string& file_path);

  // Copies a finished run recorded in another store (a cluster task's own store) with its
  // metrics, layers, curve and artifacts, in one transaction. Its uuid identifies it: a run
  // already here is not copied again (returns its id), so merging twice is harmless.
  int64_t import_run(const RunRecord& run);

  // Newest first.
  std::vector<RunInfo> list_runs(const RunFilter& filter = {});
  // Runs with their metrics (not layers or artifacts), from one snapshot: what plots and
  // Pareto fronts need, in two queries however many runs there are.
  std::vector<RunRecord> load_runs_with_metrics(const RunFilter& filter = {});
  std::optional<RunRecord> get_run(int64_t run);
  // The newest run of a project with this recipe name and status, if any.
  std::optional<RunInfo> find_run(const std::string& project, const std::string& recipe_name,
                                  RunStatus status);

  // Results of a sensitivity scan, keyed by what was measured so the same scan on the same
  // model is read back instead of recomputed. put replaces an existing value.
  void put_sensitivity(const std::string& model_fingerprint, const SensitivityEntry& e);
  void put_sensitivities(const std::string& model_fingerprint,
                         const std::vector<SensitivityEntry>& entries);  // one transaction
  std::optional<double> get_sensitivity(const std::string& model_fingerprint,
                                        const std::string& layer, const std::string& setting,
                                        const std::string& metric);
  std::vector<SensitivityEntry> list_sensitivity(const std::string& model_fingerprint);

  // Runs `fn` inside one write transaction: everything it records is seen by readers all
  // at once, or not at all if it throws.
  template <class Fn>
  void batch(Fn&& fn) {
    std::lock_guard lock(mutex_);
    Transaction tx(db_, Transaction::Write);
    fn();
    tx.commit();
  }

  ~RunStore();

 private:
  RunStore(const std::string& path, bool create);
  void configure();
  int mark_stale_runs();
  void check_run_exists(int64_t run);
  void insert_artifact(int64_t run, const Artifact& a);  // inside the caller's transaction

  // One connection, used by one thread at a time; other threads or processes open
  // their own RunStore (WAL lets them read while this one writes).
  std::recursive_mutex mutex_;
  SqliteDb db_;
  int stale_marked_ = 0;
};

}  // namespace mcw
