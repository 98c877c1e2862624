#include "engine/runs/run_schema.h"

#include <string>

#include "engine/core/error.h"

namespace mcw {

namespace {

// Times are Unix seconds (REAL). Per-run rows go with their run (ON DELETE CASCADE).
// metrics and layer_metrics keep rowids so that reading ORDER BY rowid returns them in
// the order they were recorded (layers in model order, not sorted by name).
constexpr const char* kV1 = R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (0);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  uuid TEXT NOT NULL UNIQUE,
  project TEXT NOT NULL,
  model_fingerprint TEXT NOT NULL,
  recipe_name TEXT NOT NULL,
  recipe_text TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN
    ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
  started_at REAL,
  ended_at REAL,
  host TEXT NOT NULL,
  cpu TEXT NOT NULL,
  pid INTEGER NOT NULL,
  process_tag TEXT NOT NULL,
  mcw_version TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_project ON runs (project, status);
CREATE TABLE metrics (
  run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  value REAL NOT NULL,
  UNIQUE (run, name)
);
CREATE TABLE layer_metrics (
  run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  layer TEXT NOT NULL,
  name TEXT NOT NULL,
  value REAL NOT NULL,
  UNIQUE (run, layer, name)
);
CREATE TABLE sensitivity (
  model_fingerprint TEXT NOT NULL,
  layer TEXT NOT NULL,
  setting TEXT NOT NULL,
  metric TEXT NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (model_fingerprint, layer, setting, metric)
) WITHOUT ROWID;
CREATE TABLE artifacts (
  run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  bytes INTEGER NOT NULL
);
)sql";

// v2: free-text notes on a run (the studio's run panel edits them), and artifacts looked
// up by run without a table scan.
constexpr const char* kV2 = R"sql(
ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT '';
CREATE INDEX artifacts_by_run ON artifacts (run);
)sql";

// v3: a run's curves, series of values per step (recovery fine-tuning's training loss and
// held-out KL), in recorded order.
constexpr const char* kV3 = R"sql(
CREATE TABLE curves (
  run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  series TEXT NOT NULL,
  step INTEGER NOT NULL,
  value REAL NOT NULL,
  UNIQUE (run, series, step)
);
)sql";

constexpr const char* kMigrations[] = {kV1, kV2, kV3};

bool has_table(SqliteDb& db, const char* name) {
  Statement q(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  q.bind(1, name);
  return q.step();
}

}  // namespace

std::span<const char* const> run_store_migrations() { return kMigrations; }
int run_store_latest_version() { return int(std::size(kMigrations)); }

int run_store_version(SqliteDb& db) {
  if (!has_table(db, "schema_version")) {
    Statement any(db, "SELECT count(*) FROM sqlite_master");
    any.step();
    if (any.int64(0) != 0)
      throw Error(db.path(),
                  "not an MCW run database (SQLite file without a schema_version table)");
    return 0;
  }
  Statement q(db, "SELECT version FROM schema_version");
  if (!q.step()) throw Error(db.path(), "run database is damaged: schema_version has no row");
  const int64_t v = q.int64(0);
  if (q.step()) throw Error(db.path(), "run database is damaged: schema_version has several rows");
  return int(v);
}

void migrate_run_store(SqliteDb& db, int up_to) {
  const int latest = run_store_latest_version();
  if (up_to < 0) up_to = latest;
  if (up_to > latest)
    throw Error(db.path(), "no migration to schema version " + std::to_string(up_to));
  Transaction tx(db, Transaction::Write);
  const int current = run_store_version(db);
  if (current > latest)
    throw Error(db.path(), "run database has schema version " + std::to_string(current) +
                               ", newer than this MCW " MCW_VERSION " reads (" +
                               std::to_string(latest) + "); open it with a newer MCW");
  if (current < 0) throw Error(db.path(), "run database is damaged: negative schema version");
  for (int v = current; v < up_to; ++v) {
    db.exec(kMigrations[v]);
    Statement set(db, "UPDATE schema_version SET version = ?");
    set.bind(1, int64_t(v + 1)).run();
  }
  tx.commit();
}

}  // namespace mcw
