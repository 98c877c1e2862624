// The run store's schema as an ordered list of forward migrations: script i takes a
// database from version i to i + 1 (version 0 = empty file). Released scripts are never
// edited; a change to the schema is a new script appended here.
#pragma once
#include <span>

#include "engine/runs/sqlite_db.h"

namespace mcw {

// The scripts, oldest first; the newest version this MCW knows is their count.
std::span<const char* const> run_store_migrations();
int run_store_latest_version();

// The version recorded in the file: 0 for an empty database. Throws mcw::Error for a
// file that is not an MCW run database (other tables and no schema_version).
int run_store_version(SqliteDb& db);

// Applies every missing migration in one write transaction, so concurrent openers agree
// and a crash mid-way leaves the old version. Throws mcw::Error, naming the file, for a
// version newer than this MCW knows, or when `up_to` exceeds the latest version.
// `up_to` < 0 means the latest (tests pass a lower version to build old databases).
void migrate_run_store(SqliteDb& db, int up_to = -1);

}  // namespace mcw
