// A thin RAII layer over SQLite: one connection, prepared statements with bound
// parameters, and nestable transactions. Every failure becomes mcw::Error naming the
// database file and SQLite's message, so callers never see a raw return code.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace mcw {

class SqliteDb {
 public:
  // Opens (creating if asked) the database file. Throws mcw::Error.
  SqliteDb(const std::string& path, bool create);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs constant SQL (no values from outside: those go through Statement binds).
  void exec(const char* sql);
  int64_t last_insert_id() const;
  int changes() const;

  [[noreturn]] void fail(const std::string& what) const;    // adds SQLite's message
  std::string reason(const char* message = nullptr) const;  // SQLite's message, the system's reason
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

  int transaction_depth = 0;  // maintained by Transaction

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(SqliteDb& db, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, in the order of the '?' in the SQL. Text is copied by SQLite.
  Statement& bind(int i, int64_t v);
  Statement& bind(int i, double v);
  Statement& bind(int i, std::string_view v);
  Statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Statement& bind_null(int i);

  // True while a row is available; false once the statement is done.
  bool step();
  // Runs a statement that returns no rows, then resets it for the next binds.
  void run();
  void reset();

  bool is_null(int col) const;
  int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;

 private:
  SqliteDb& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE (write) or BEGIN (read snapshot) at the outermost level, a SAVEPOINT
// when nested; rolled back unless commit() is called. A write transaction takes the write
// lock up front so that a read-then-write never fails with a stale snapshot.
class Transaction {
 public:
  enum Kind { Read, Write };
  Transaction(SqliteDb& db, Kind kind);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  SqliteDb& db_;
  int level_;
  bool done_ = false;
};

}  // namespace mcw
