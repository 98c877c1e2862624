// Shared set-up for the studio's QTest executables: settings of the test process's own
// (never the user's, nor another test's), a temporary directory for projects, and small
// lookups into the window.
#pragma once
#include <QCoreApplication>
#include <QDir>
#include <QSettings>
#include <QStandardPaths>
#include <QTemporaryDir>

#include "app/studio/main_window.h"
#include "test_project_maker.h"

namespace mcw::test {

// Call first, in initTestCase(), before anything reads settings. Test mode keeps them under
// $HOME/.qttest, and every test process has a HOME of its own: under CTest the sandbox
// (tests/mcw_test_sandbox.cpp) made one; a test run by hand gets one here, removed at exit.
inline void use_test_settings() {
  if (qEnvironmentVariableIsEmpty("MCW_TEST_SANDBOX")) {
    static QTemporaryDir home(QDir::tempPath() + QStringLiteral("/mcw-studio-test-XXXXXX"));
    if (home.isValid()) qputenv("HOME", QFile::encodeName(home.path()));
  }
  QStandardPaths::setTestModeEnabled(true);
  QCoreApplication::setOrganizationName(QStringLiteral("MCW-tests"));
  QCoreApplication::setApplicationName(QStringLiteral("mcw-studio-tests"));
  QSettings().clear();
}

inline bool all_stats_ready(const ui::ModelSummary& m) {
  if (m.loading || m.tensors.isEmpty()) return false;
  for (const ui::TensorRow& r : m.tensors)
    if (!r.stats.ready) return false;
  return true;
}

inline ui::JobProgress find_job(const studio::ProjectContext& c, const QString& name) {
  ui::JobProgress found;
  for (const ui::JobProgress& j : c.jobs())
    if (j.name == name) found = j;  // the newest one of that name
  return found;
}

inline bool log_contains(const studio::ProjectContext& c, const QString& text) {
  for (const QString& line : c.logLines())
    if (line.contains(text)) return true;
  return false;
}

}  // namespace mcw::test
