// Writes a report in the format its file name asks for.
#pragma once
#include <string>
#include <vector>

#include "engine/report/report_data.h"

namespace mcw {

enum class ReportFormat { Html, Markdown, Csv };

// From the extension, case-insensitively: .html/.htm, .md/.markdown, .csv. Throws
// mcw::Error (one line naming the path) for any other.
ReportFormat report_format_for(const std::string& path);

// Writes each file atomically (temp file + fsync + rename) and returns the files written:
// one for HTML and Markdown; for CSV, path and its -layers and -sensitivity siblings (see
// csv_report.h).
std::vector<std::string> write_report(const ReportData& data, const std::string& path);

}  // namespace mcw
