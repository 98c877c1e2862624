#include "engine/runs/run_store.h"

#include <sqlite3.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <random>
#include <unordered_map>

#include "engine/core/error.h"
#include "engine/core/sha256.h"
#include "engine/runs/process_identity.h"
#include "engine/runs/run_schema.h"

namespace mcw {

namespace {

constexpr const char* kStatusNames[] = {"queued", "running",   "done",
                                        "failed", "cancelled", "interrupted"};

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string random_uuid() {
  std::random_device rd;
  uint8_t b[16];
  for (int i = 0; i < 16; i += 4) {
    const uint32_t r = rd();
    for (int j = 0; j < 4; ++j) b[i + j] = uint8_t(r >> (8 * j));
  }
  b[6] = uint8_t((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = uint8_t((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += hex[b[i] >> 4], s += hex[b[i] & 15];
  }
  return s;
}

constexpr const char* kRunColumns =
    "id, uuid, project, model_fingerprint, recipe_name, recipe_text, status, started_at, "
    "ended_at, host, cpu, pid, process_tag, mcw_version, error, notes";

// ?1 = project ('' for any), ?2 = status (NULL for any).
constexpr const char* kRunFilter = "(?1 = '' OR project = ?1) AND (?2 IS NULL OR status = ?2)";

RunInfo read_run(const Statement& q, const std::string& db_path) {
  RunInfo r;
  r.id = q.int64(0);
  r.uuid = q.text(1);
  r.project = q.text(2);
  r.model_fingerprint = q.text(3);
  r.recipe_name = q.text(4);
  r.recipe_text = q.text(5);
  const std::string status = q.text(6);
  const auto s = run_status_from_name(status);
  if (!s)
    throw Error(db_path, "run " + std::to_string(r.id) + " has an unknown status '" + status + "'");
  r.status = *s;
  r.started_at = q.is_null(7) ? 0 : q.real(7);
  r.ended_at = q.is_null(8) ? 0 : q.real(8);
  r.host = q.text(9);
  r.cpu = q.text(10);
  r.pid = q.int64(11);
  r.process_tag = q.text(12);
  r.mcw_version = q.text(13);
  r.error = q.text(14);
  r.notes = q.text(15);
  return r;
}

void bind_filter(Statement& q, const RunFilter& f) {
  q.bind(1, f.project);
  if (f.status)
    q.bind(2, run_status_name(*f.status));
  else
    q.bind_null(2);
}

}  // namespace

const char* run_status_name(RunStatus s) { return kStatusNames[int(s)]; }

std::optional<RunStatus> run_status_from_name(std::string_view s) {
  for (int i = 0; i < int(std::size(kStatusNames)); ++i)
    if (s == kStatusNames[i]) return RunStatus(i);
  return std::nullopt;
}

bool run_status_final(RunStatus s) { return s != RunStatus::Queued && s != RunStatus::Running; }

bool run_status_transition_allowed(RunStatus from, RunStatus to) {
  if (from == RunStatus::Queued) return to == RunStatus::Running || to == RunStatus::Cancelled;
  if (from == RunStatus::Running) return run_status_final(to);
  return false;
}

std::optional<double> RunRecord::metric(std::string_view name) const {
  for (const Metric& m : metrics)
    if (m.name == name) return m.value;
  return std::nullopt;
}

RunStore::RunStore(const std::string& path, bool create) : db_(path, create) {}
RunStore::~RunStore() = default;

bool run_store_is_damaged(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return true;
  }
  sqlite3_stmt* st = nullptr;
  bool damaged = true;
  if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    const auto* first = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    damaged = !first || std::string(first) != "ok";
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return damaged;
}

std::string set_aside_run_store(const std::string& path) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::gmtime(&now));
  const std::string aside = path + ".damaged-" + stamp;
  std::error_code ec;
  std::filesystem::rename(path, aside, ec);
  if (ec) throw Error(path, "cannot move the damaged run database aside: " + ec.message());
  for (const char* side : {"-wal", "-shm"})
    if (std::filesystem::exists(path + side, ec)) std::filesystem::rename(path + side, aside + side, ec);
  return aside;
}

std::unique_ptr<RunStore> RunStore::open(const std::string& path) {
  std::unique_ptr<RunStore> s(new RunStore(path, true));
  s->configure();
  migrate_run_store(s->db_);
  s->stale_marked_ = s->mark_stale_runs();
  return s;
}

std::unique_ptr<RunStore> RunStore::open_existing(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(path, "no such run database");
  return open(path);
}

void RunStore::configure() {
  // The timeout comes first: switching to WAL briefly needs a lock another process may hold.
  db_.exec("PRAGMA busy_timeout = 10000");
  Statement wal(db_, "PRAGMA journal_mode = WAL");
  if (!wal.step() || wal.text(0) != "wal")
    throw Error(db_.path(),
                "run database cannot use write-ahead logging (journal mode '" + wal.text(0) + "')");
  db_.exec("PRAGMA foreign_keys = ON");
  // With WAL, NORMAL survives a crash of the process (only a power cut can lose the last
  // commits, never corrupt the file).
  db_.exec("PRAGMA synchronous = NORMAL");
}

int RunStore::mark_stale_runs() {
  std::lock_guard lock(mutex_);
  Transaction tx(db_, Transaction::Write);
  Statement running(db_, "SELECT id, host, pid, process_tag FROM runs WHERE status = 'running'");
  const std::string host = host_name();
  std::vector<int64_t> stale;
  while (running.step())
    if (running.text(1) == host && !process_alive(running.int64(2), running.text(3)))
      stale.push_back(running.int64(0));
  Statement mark(db_,
                 "UPDATE runs SET status = 'interrupted', ended_at = ?, error = ? WHERE id = ?");
  for (int64_t id : stale)
    mark.bind(1, now_seconds())
        .bind(2, "its process ended without finishing it (crash or kill)")
        .bind(3, id)
        .run();
  tx.commit();
  return int(stale.size());
}

void RunStore::check_run_exists(int64_t run) {
  Statement q(db_, "SELECT 1 FROM runs WHERE id = ?");
  q.bind(1, run);
  if (!q.step()) throw Error(db_.path(), "no run with id " + std::to_string(run));
}

int64_t RunStore::create_run(RunInfo r) {
  if (r.uuid.empty()) r.uuid = random_uuid();
  if (r.host.empty()) r.host = host_name();
  if (r.cpu.empty()) r.cpu = cpu_model();
  if (r.pid == 0) r.pid = current_pid(), r.process_tag = process_tag(r.pid);
  if (r.mcw_version.empty()) r.mcw_version = MCW_VERSION;
  if (r.started_at == 0 && r.status != RunStatus::Queued) r.started_at = now_seconds();
  std::lock_guard lock(mutex_);
  Statement ins(db_,
                "INSERT INTO runs (uuid, project, model_fingerprint, recipe_name, recipe_text, "
                "status, started_at, ended_at, host, cpu, pid, process_tag, mcw_version, error, "
                "notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  ins.bind(1, r.uuid).bind(2, r.project).bind(3, r.model_fingerprint).bind(4, r.recipe_name);
  ins.bind(5, r.recipe_text).bind(6, run_status_name(r.status));
  r.started_at > 0 ? ins.bind(7, r.started_at) : ins.bind_null(7);
  r.ended_at > 0 ? ins.bind(8, r.ended_at) : ins.bind_null(8);
  ins.bind(9, r.host).bind(10, r.cpu).bind(11, r.pid).bind(12, r.process_tag);
  ins.bind(13, r.mcw_version).bind(14, r.error).bind(15, r.notes);
  ins.run();
  return db_.last_insert_id();
}

void RunStore::set_status(int64_t run, RunStatus status, const std::string& error) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_, Transaction::Write);
  Statement q(db_, "SELECT status FROM runs WHERE id = ?");
  q.bind(1, run);
  if (!q.step()) throw Error(db_.path(), "no run with id " + std::to_string(run));
  const auto from = run_status_from_name(q.text(0));
  if (!from || !run_status_transition_allowed(*from, status))
    throw Error(db_.path(), "run " + std::to_string(run) + " cannot go from " + q.text(0) + " to " +
                                run_status_name(status));
  Statement up(db_,
               "UPDATE runs SET status = ?1, error = ?2, "
               "started_at = CASE WHEN ?1 = 'running' THEN ?3 ELSE started_at END, "
               "ended_at = CASE WHEN ?1 = 'running' THEN NULL ELSE ?3 END WHERE id = ?4");
  up.bind(1, run_status_name(status)).bind(2, error).bind(3, now_seconds()).bind(4, run).run();
  tx.commit();
}

void RunStore::set_notes(int64_t run, const std::string& notes) {
  std::lock_guard lock(mutex_);
  Statement up(db_, "UPDATE runs SET notes = ? WHERE id = ?");
  up.bind(1, notes).bind(2, run).run();
  if (db_.changes() == 0) throw Error(db_.path(), "no run with id " + std::to_string(run));
}

void RunStore::add_metric(int64_t run, const std::string& name, double value) {
  add_metrics(run, {{name, value}});
}

void RunStore::add_metrics(int64_t run, const std::vector<Metric>& metrics) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_, Transaction::Write);
  check_run_exists(run);
  // A metric recorded again replaces the old value (and moves to the end of the order).
  Statement ins(db_, "INSERT OR REPLACE INTO metrics (run, name, value) VALUES (?, ?, ?)");
  for (const Metric& m : metrics) ins.bind(1, run).bind(2, m.name).bind(3, m.value).run();
  tx.commit();
}

void RunStore::add_layer_metrics(int64_t run, const std::vector<LayerMetric>& metrics) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_, Transaction::Write);
  check_run_exists(run);
  Statement ins(
      db_, "INSERT OR REPLACE INTO layer_metrics (run, layer, name, value) VALUES (?, ?, ?, ?)");
  for (const LayerMetric& m : metrics)
    ins.bind(1, run).bind(2, m.layer).bind(3, m.name).bind(4, m.value).run();
  tx.commit();
}

void RunStore::add_curve(int64_t run, const std::vector<CurvePoint>& points) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_, Transaction::Write);
  check_run_exists(run);
  Statement ins(db_, "INSERT OR REPLACE INTO curves (run, series, step, value) VALUES (?, ?, ?, ?)");
  for (const CurvePoint& p : points) ins.bind(1, run).bind(2, p.series).bind(3, p.step).bind(4, p.value).run();
  tx.commit();
}

std::vector<CurvePoint> RunStore::load_curve(int64_t run) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT series, step, value FROM curves WHERE run = ? ORDER BY rowid");
  q.bind(1, run);
  std::vector<CurvePoint> out;
  while (q.step()) out.push_back({q.text(0), q.int64(1), q.real(2)});
  return out;
}

void RunStore::add_artifact(int64_t run, const std::string& kind, const std::string& file_path) {
  const FileHash h = sha256_file(file_path);  // before the lock: large files take a while
  std::lock_guard lock(mutex_);
  Transaction tx(db_, Transaction::Write);
  check_run_exists(run);
  insert_artifact(run, {kind, file_path, h.sha256, h.bytes});
  tx.commit();
}

void RunStore::insert_artifact(int64_t run, const Artifact& a) {
  Statement ins(db_,
                "INSERT INTO artifacts (run, kind, path, sha256, bytes) VALUES (?, ?, ?, ?, ?)");
  ins.bind(1, run).bind(2, a.kind).bind(3, a.path).bind(4, a.sha256).bind(5, int64_t(a.bytes));
  ins.run();
}

int64_t RunStore::import_run(const RunRecord& run) {
  if (run.info.uuid.empty() || !run_status_final(run.info.status))
    throw Error(db_.path(), "only a finished run with a uuid can be imported");
  std::lock_guard lock(mutex_);
  {
    Statement q(db_, "SELECT id FROM runs WHERE uuid = ?");
    q.bind(1, run.info.uuid);
    if (q.step()) return q.int64(0);
  }
  int64_t id = 0;
  batch([&] {
    id = create_run(run.info);
    add_metrics(id, run.metrics);
    add_layer_metrics(id, run.layers);
    add_curve(id, run.curve);
    for (const Artifact& a : run.artifacts) insert_artifact(id, a);
  });
  return id;
}

std::vector<RunInfo> RunStore::list_runs(const RunFilter& filter) {
  std::lock_guard lock(mutex_);
  Statement q(db_, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE " + kRunFilter +
                    " ORDER BY id DESC")
                       .c_str());
  bind_filter(q, filter);
  std::vector<RunInfo> out;
  while (q.step()) out.push_back(read_run(q, db_.path()));
  return out;
}

std::vector<RunRecord> RunStore::load_runs_with_metrics(const RunFilter& filter) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_, Transaction::Read);  // runs and metrics from the same snapshot
  std::vector<RunRecord> out;
  std::unordered_map<int64_t, size_t> index;
  {
    Statement q(db_, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE " + kRunFilter +
                      " ORDER BY id DESC")
                         .c_str());
    bind_filter(q, filter);
    while (q.step()) {
      out.push_back({read_run(q, db_.path()), {}, {}, {}});
      index.emplace(out.back().info.id, out.size() - 1);
    }
  }
  Statement m(db_, (std::string("SELECT m.run, m.name, m.value FROM metrics m JOIN runs ON "
                                "runs.id = m.run WHERE ") +
                    kRunFilter + " ORDER BY m.rowid")
                       .c_str());
  bind_filter(m, filter);
  while (m.step()) {
    const auto it = index.find(m.int64(0));
    if (it != index.end()) out[it->second].metrics.push_back({m.text(1), m.real(2)});
  }
  tx.commit();
  return out;
}

std::optional<RunRecord> RunStore::get_run(int64_t run) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_, Transaction::Read);
  RunRecord rec;
  {
    Statement q(db_, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?").c_str());
    q.bind(1, run);
    if (!q.step()) return std::nullopt;
    rec.info = read_run(q, db_.path());
  }
  Statement m(db_, "SELECT name, value FROM metrics WHERE run = ? ORDER BY rowid");
  m.bind(1, run);
  while (m.step()) rec.metrics.push_back({m.text(0), m.real(1)});
  Statement l(db_, "SELECT layer, name, value FROM layer_metrics WHERE run = ? ORDER BY rowid");
  l.bind(1, run);
  while (l.step()) rec.layers.push_back({l.text(0), l.text(1), l.real(2)});
  Statement a(db_, "SELECT kind, path, sha256, bytes FROM artifacts WHERE run = ? ORDER BY rowid");
  a.bind(1, run);
  while (a.step()) rec.artifacts.push_back({a.text(0), a.text(1), a.text(2), uint64_t(a.int64(3))});
  rec.curve = load_curve(run);
  tx.commit();
  return rec;
}

std::optional<RunInfo> RunStore::find_run(const std::string& project,
                                          const std::string& recipe_name, RunStatus status) {
  std::lock_guard lock(mutex_);
  Statement q(db_, (std::string("SELECT ") + kRunColumns +
                    " FROM runs WHERE project = ? AND recipe_name = ? AND status = ? "
                    "ORDER BY id DESC LIMIT 1")
                       .c_str());
  q.bind(1, project).bind(2, recipe_name).bind(3, run_status_name(status));
  if (!q.step()) return std::nullopt;
  return read_run(q, db_.path());
}

void RunStore::put_sensitivity(const std::string& fp, const SensitivityEntry& e) {
  put_sensitivities(fp, {e});
}

void RunStore::put_sensitivities(const std::string& fp, const std::vector<SensitivityEntry>& es) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_, Transaction::Write);
  Statement ins(db_,
                "INSERT OR REPLACE INTO sensitivity (model_fingerprint, layer, setting, metric, "
                "value) VALUES (?, ?, ?, ?, ?)");
  for (const SensitivityEntry& e : es)
    ins.bind(1, fp).bind(2, e.layer).bind(3, e.setting).bind(4, e.metric).bind(5, e.value).run();
  tx.commit();
}

std::optional<double> RunStore::get_sensitivity(const std::string& fp, const std::string& layer,
                                                const std::string& setting,
                                                const std::string& metric) {
  std::lock_guard lock(mutex_);
  Statement q(db_,
              "SELECT value FROM sensitivity WHERE model_fingerprint = ? AND layer = ? AND "
              "setting = ? AND metric = ?");
  q.bind(1, fp).bind(2, layer).bind(3, setting).bind(4, metric);
  if (!q.step()) return std::nullopt;
  return q.real(0);
}

std::vector<SensitivityEntry> RunStore::list_sensitivity(const std::string& fp) {
  std::lock_guard lock(mutex_);
  Statement q(db_,
              "SELECT layer, setting, metric, value FROM sensitivity WHERE model_fingerprint = ? "
              "ORDER BY layer, setting, metric");
  q.bind(1, fp);
  std::vector<SensitivityEntry> out;
  while (q.step()) out.push_back({q.text(0), q.text(1), q.text(2), q.real(3)});
  return out;
}

}  // namespace mcw
