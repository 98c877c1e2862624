// mcw-studio [project.mcwproj | model file] [--screenshot out.png [--evaluate] [--run-all]
//             [--scan] [--compare-with MODEL] [--export-report FILE] [--panel-shots DIR]]
#include <QApplication>
#include <QCommandLineParser>

#include "app/studio/main_window.h"
#include "app/studio/screenshot.h"
#include "engine/core/huge_pages.h"

int main(int argc, char** argv) {
  mcw::restart_with_huge_page_malloc(argv);
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("MCW"));
  QApplication::setApplicationName(QStringLiteral("mcw-studio"));
  QApplication::setApplicationDisplayName(QStringLiteral("MCW Studio"));
  QApplication::setApplicationVersion(QStringLiteral(MCW_VERSION));

  QCommandLineParser parser;
  parser.setApplicationDescription(QStringLiteral("MCW Studio, the model compression workbench"));
  parser.addHelpOption();
  parser.addVersionOption();
  parser.addPositionalArgument(QStringLiteral("path"),
                               QStringLiteral("A project (*.mcwproj) or a model file to open."));
  const QCommandLineOption screenshot(
      QStringLiteral("screenshot"),
      QStringLiteral("Save a PNG of the window once loading has finished, then quit."),
      QStringLiteral("file"));
  const QCommandLineOption evaluate(QStringLiteral("evaluate"),
                                    QStringLiteral("With --screenshot: run Evaluate first."));
  const QCommandLineOption run_all(
      QStringLiteral("run-all"), QStringLiteral("With --screenshot: run every recipe first."));
  const QCommandLineOption theme(QStringLiteral("theme"),
                                 QStringLiteral("light or dark (default: the saved one)."),
                                 QStringLiteral("name"));
  const QCommandLineOption panel_shots(
      QStringLiteral("panel-shots"),
      QStringLiteral("With --screenshot: also save pictures of single panels into this folder "
                     "(created when missing)."),
      QStringLiteral("dir"));
  const QCommandLineOption scan(
      QStringLiteral("scan"),
      QStringLiteral("With --screenshot: run a sensitivity scan last and print the UI "
                     "heartbeat's lateness during it."));
  const QCommandLineOption report(
      QStringLiteral("export-report"),
      QStringLiteral("With --screenshot: export the report (.html, .md, .csv or .pdf) first."),
      QStringLiteral("file"));
  const QCommandLineOption compare_with(
      QStringLiteral("compare-with"),
      QStringLiteral("With --screenshot: compare the model with this one (Model Diff panel)."),
      QStringLiteral("model"));
  const QCommandLineOption what_if(
      QStringLiteral("what-if"),
      QStringLiteral("With --screenshot: edit this project recipe's per-layer settings in "
                     "what-if mode (after --scan), its prediction on the trade-off plot."),
      QStringLiteral("recipe"));
  parser.addOptions(
      {screenshot, evaluate, run_all, scan, report, theme, panel_shots, compare_with, what_if});
  parser.process(app);

  mcw::studio::MainWindow window;
  if (parser.isSet(theme)) window.setTheme(mcw::studio::theme_from_key(parser.value(theme)));
  window.show();
  if (!parser.positionalArguments().isEmpty()) window.openPath(parser.positionalArguments().first());
  if (parser.isSet(screenshot)) {
    mcw::studio::ScreenshotOptions opt;
    opt.output = parser.value(screenshot);
    opt.evaluate = parser.isSet(evaluate);
    opt.panels_dir = parser.value(panel_shots);
    opt.run_all = parser.isSet(run_all);
    opt.scan = parser.isSet(scan);
    opt.report = parser.value(report);
    opt.compare_with = parser.value(compare_with);
    opt.what_if = parser.value(what_if);
    if (opt.run_all || opt.scan) opt.timeout_ms = 600000;
    mcw::studio::schedule_screenshot(window, opt);
  }
  return app.exec();
}
