#include "app/studio/report_pdf.h"

#include <QFile>
#include <QPageLayout>
#include <QPainter>
#include <QPdfWriter>
#include <QRegularExpression>
#include <QSvgRenderer>
#include <QTextDocument>
#include <QThread>
#include <QUrl>
#include <exception>
#include <filesystem>
#include <memory>

#include "engine/core/error.h"
#include "engine/report/html_report.h"

namespace mcw::studio {

namespace {

// What QTextDocument understands of a report page: plain tables with rules, muted notes.
const char* const kPrintCss = R"css(
body { font-family: "DejaVu Sans", sans-serif; font-size: 9pt; color: #111827; }
h1 { font-size: 20pt; margin: 0 0 4px 0; }
h2 { font-size: 14pt; margin: 18px 0 6px 0; color: #1e3a8a; }
h3 { font-size: 11pt; margin: 10px 0 4px 0; }
table { border-collapse: collapse; margin: 4px 0 8px 0; }
th, td { border: 1px solid #d1d5db; padding: 2px 4px; vertical-align: top; font-size: 7.5pt; }
th { background-color: #f3f4f6; font-weight: 600; text-align: left; }
td.num, th.num { text-align: right; }
table.facts th { background-color: #ffffff; color: #4b5563; font-weight: normal; }
tr.err td { color: #991b1b; background-color: #fef2f2; }
.kicker, .meta, .note, .empty, .detail, .label, footer { color: #6b7280; }
table.cards td { border: 1px solid #e5e7eb; background-color: #f9fafb; padding: 6px; }
.value { font-size: 12pt; font-weight: 600; }
.pill { font-weight: 600; }
.warn { background-color: #fffbeb; color: #92400e; }
pre { font-family: "DejaVu Sans Mono", monospace; font-size: 8pt; background-color: #f3f4f6; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 8pt; }
)css";

// A layout QTextDocument can follow: no page stylesheet or navigation, the summary cards
// as one table row instead of a CSS grid, <details> open.
QString simplify(QString html) {
  html.remove(QRegularExpression(QStringLiteral("<style>.*?</style>"),
                                 QRegularExpression::DotMatchesEverythingOption));
  html.remove(QRegularExpression(QStringLiteral("<nav class=\"toc\">.*?</nav>"),
                                 QRegularExpression::DotMatchesEverythingOption));
  static const QRegularExpression card(QStringLiteral(
      "<div class=\"card\"><div class=\"label\">(.*?)</div><div class=\"value\">(.*?)</div>"
      "<div class=\"detail\">(.*?)</div></div>\n"));
  html.replace(card, QStringLiteral("<td class=\"card\"><span class=\"label\">\\1</span><br/>"
                                    "<span class=\"value\">\\2</span><br/>"
                                    "<span class=\"detail\">\\3</span></td>"));
  html.replace(QStringLiteral("<div class=\"cards\">\n"),
               QStringLiteral("<table class=\"cards\" width=\"100%\"><tr>"));
  html.replace(QStringLiteral("</td></div>\n"), QStringLiteral("</td></tr></table>\n"));
  // Tables take the text width, so that numbers do not wrap inside narrow columns.
  html.replace(QStringLiteral("<table>"), QStringLiteral("<table width=\"100%\">"));
  html.replace(QStringLiteral("<table class=\"facts\">"),
               QStringLiteral("<table class=\"facts\" width=\"100%\">"));
  html.replace(QStringLiteral("<summary>"), QStringLiteral("<p><b>"));
  html.replace(QStringLiteral("</summary>"), QStringLiteral("</b></p>"));
  return html;
}

}  // namespace

PrintableReport printable_report(const QString& engine_html, int max_width) {
  PrintableReport out;
  const QString html = simplify(engine_html);
  static const QRegularExpression svg(QStringLiteral("<svg\\b.*?</svg>"),
                                      QRegularExpression::DotMatchesEverythingOption);
  qsizetype from = 0;
  for (auto it = svg.globalMatch(html); it.hasNext();) {
    const QRegularExpressionMatch m = it.next();
    out.html += html.mid(from, m.capturedStart() - from);
    from = m.capturedEnd();
    QByteArray text = m.captured().toUtf8();
    if (!text.contains("xmlns="))  // inline SVG in HTML may leave the namespace out
      text.replace(0, 4, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
    QSvgRenderer renderer(text);
    const QSize size = renderer.defaultSize();
    if (!renderer.isValid() || size.isEmpty()) {
      out.html += QStringLiteral("<p class=\"note\">(a plot that could not be drawn)</p>");
      continue;
    }
    QImage image(size * 2, QImage::Format_ARGB32_Premultiplied);
    image.fill(Qt::white);
    QPainter p(&image);
    p.setRenderHint(QPainter::Antialiasing);
    renderer.render(&p);
    p.end();
    // Wider plots shrink to the text width (the image keeps its pixels, so it stays sharp).
    const QSize shown = size.width() <= max_width
                            ? size
                            : QSize(max_width, size.height() * max_width / size.width());
    out.html += QStringLiteral("<p><img src=\"mcw-plot:%1\" width=\"%2\" height=\"%3\"/></p>")
                    .arg(out.plots.size())
                    .arg(shown.width())
                    .arg(shown.height());
    out.plots.push_back(image);
    out.sizes.push_back(shown);
  }
  out.html += html.mid(from);
  return out;
}

static void write_pdf(const ReportData& data, const QString& path) {
  const QString part = path + QStringLiteral(".part");
  {
    QPdfWriter writer(part);
    writer.setPageSize(QPageSize(QPageSize::A4));
    // QTextDocument::print() adds 2 cm margins of its own and numbers the pages.
    writer.setPageMargins(QMarginsF(0, 0, 0, 0));
    writer.setTitle(QStringLiteral("MCW report: ") + QString::fromStdString(data.project.name));
    writer.setCreator(QStringLiteral("MCW Studio"));
    const double text_inches =
        writer.pageLayout().paintRect(QPageLayout::Inch).width() - 2 * 2 / 2.54;
    const PrintableReport report =
        printable_report(QString::fromStdString(html_report(data)), int(text_inches * 96) - 16);
    QTextDocument doc;
    doc.setDefaultStyleSheet(QString::fromLatin1(kPrintCss));
    for (qsizetype i = 0; i < report.plots.size(); ++i)
      doc.addResource(QTextDocument::ImageResource, QUrl(QStringLiteral("mcw-plot:%1").arg(i)),
                      report.plots[i]);
    doc.setHtml(report.html);
    doc.print(&writer);
  }
  QFile written(part);
  if (!written.exists() || written.size() < 8) {
    written.remove();
    throw Error(path.toStdString(), "cannot write the PDF");
  }
  std::error_code ec;
  std::filesystem::rename(part.toStdString(), path.toStdString(), ec);
  if (ec) {
    written.remove();
    throw Error(path.toStdString(), "cannot write the PDF: " + ec.message());
  }
}

void write_pdf_report(const ReportData& data, const QString& path) {
  // QTextDocument lays out with timers, which need a thread with an event dispatcher: a
  // QThread of its own (engine jobs run on plain std::threads).
  std::exception_ptr error;
  std::unique_ptr<QThread> thread(QThread::create([&] {
    try {
      write_pdf(data, path);
    } catch (...) {
      error = std::current_exception();
    }
  }));
  thread->start();
  thread->wait();
  if (error) std::rethrow_exception(error);
}

}  // namespace mcw::studio
