// The review report as a PDF, through Qt: the engine's HTML report (engine/report) laid
// out by QTextDocument and printed to a QPdfWriter. QTextDocument draws a subset of HTML
// and no SVG, so each inline SVG plot is rendered to an image with QSvgRenderer first,
// the page stylesheet is replaced by one QTextDocument understands, and the navigation
// links (useless on paper) are dropped. Safe on a worker thread: the layout runs on a
// QThread of its own, which the caller waits for.
#pragma once
#include <QImage>
#include <QList>
#include <QString>

#include "engine/report/report_data.h"

namespace mcw::studio {

struct PrintableReport {
  QString html;         // plots as <img src="mcw-plot:N">
  QList<QImage> plots;  // N -> image (rendered at twice the plot's size)
  QList<QSize> sizes;   // N -> the size it is shown at, in CSS pixels
};

// From the engine's HTML report text; plots wider than `max_width` CSS pixels are shown
// scaled down to it. A plot QSvgRenderer cannot read becomes a line saying so.
PrintableReport printable_report(const QString& engine_html, int max_width = 640);

// Writes `path` atomically (a temporary file beside it, then renamed). Throws mcw::Error
// naming the path when it cannot be written.
void write_pdf_report(const ReportData& data, const QString& path);

}  // namespace mcw::studio
