#include "engine/runs/sqlite_db.h"

#include <sqlite3.h>

#include <cstring>

#include "engine/core/error.h"

namespace mcw {

SqliteDb::SqliteDb(const std::string& path, bool create) : path_(path) {
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) |
                    SQLITE_OPEN_NOMUTEX;  // callers serialise use of one connection
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(path, "cannot open run database: " + msg);
  }
  sqlite3_extended_result_codes(db_, 1);
}

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

// SQLite says "disk I/O error" for a full disk or a file-size limit; the system's reason
// (errno of the failed call) is what tells the user to make room.
std::string SqliteDb::reason(const char* message) const {
  std::string msg = message ? message : sqlite3_errmsg(db_);
  const int code = sqlite3_errcode(db_) & 0xff;  // the primary code of an extended one
  const int sys = sqlite3_system_errno(db_);
  if ((code == SQLITE_IOERR || code == SQLITE_FULL || code == SQLITE_CANTOPEN) && sys != 0)
    msg += std::string(" (") + std::strerror(sys) + ")";
  return msg;
}

void SqliteDb::fail(const std::string& what) const { throw Error(path_, what + ": " + reason()); }

void SqliteDb::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = reason(err);
    sqlite3_free(err);
    throw Error(path_, "run database: " + msg);
  }
}

int64_t SqliteDb::last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
int SqliteDb::changes() const { return sqlite3_changes(db_); }

Statement::Statement(SqliteDb& db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v3(db.handle(), sql, -1, 0, &stmt_, nullptr) != SQLITE_OK)
    db.fail("run database query failed");
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int i, int64_t v) {
  if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) db_.fail("binding a parameter");
  return *this;
}
Statement& Statement::bind(int i, double v) {
  if (sqlite3_bind_double(stmt_, i, v) != SQLITE_OK) db_.fail("binding a parameter");
  return *this;
}
Statement& Statement::bind(int i, std::string_view v) {
  if (sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8) != SQLITE_OK)
    db_.fail("binding a parameter");
  return *this;
}
Statement& Statement::bind_null(int i) {
  if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) db_.fail("binding a parameter");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3_reset(stmt_);  // so the connection's message is the step's, and the statement reusable
  db_.fail("run database query failed");
}

void Statement::run() {
  while (step()) {
  }
  reset();
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Statement::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::real(int col) const { return sqlite3_column_double(stmt_, col); }
std::string Statement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, size_t(sqlite3_column_bytes(stmt_, col))) : std::string();
}

Transaction::Transaction(SqliteDb& db, Kind kind) : db_(db), level_(db.transaction_depth) {
  if (level_ == 0)
    db_.exec(kind == Write ? "BEGIN IMMEDIATE" : "BEGIN");
  else
    db_.exec(("SAVEPOINT mcw_" + std::to_string(level_)).c_str());
  ++db_.transaction_depth;
}

void Transaction::commit() {
  if (done_) return;
  if (level_ == 0)
    db_.exec("COMMIT");
  else
    db_.exec(("RELEASE mcw_" + std::to_string(level_)).c_str());
  done_ = true;
  --db_.transaction_depth;
}

Transaction::~Transaction() {
  if (done_) return;
  --db_.transaction_depth;
  // A failed rollback leaves nothing better to do in a destructor; SQLite rolls back an
  // open transaction when the connection closes.
  if (level_ == 0) {
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  } else {
    const std::string sp = "mcw_" + std::to_string(level_);
    sqlite3_exec(db_.handle(), ("ROLLBACK TO " + sp + "; RELEASE " + sp).c_str(), nullptr, nullptr,
                 nullptr);
  }
}

}  // namespace mcw
