#include "engine/report/report_writer.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/report/csv_report.h"
#include "engine/report/html_report.h"
#include "engine/report/markdown_report.h"

namespace mcw {

namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return ext;
}

}  // namespace

ReportFormat report_format_for(const std::string& path) {
  const std::string ext = lower_extension(path);
  if (ext == ".html" || ext == ".htm") return ReportFormat::Html;
  if (ext == ".md" || ext == ".markdown") return ReportFormat::Markdown;
  if (ext == ".csv") return ReportFormat::Csv;
  throw Error(path, (ext.empty() ? std::string("no file extension")
                                 : "unknown report format '" + ext + "'") +
                        ": use .html, .htm, .md or .csv");
}

std::vector<std::string> write_report(const ReportData& data, const std::string& path) {
  switch (report_format_for(path)) {
    case ReportFormat::Html:
      write_file_atomically(path, html_report(data));
      return {path};
    case ReportFormat::Markdown:
      write_file_atomically(path, markdown_report(data));
      return {path};
    case ReportFormat::Csv: {
      const CsvReport c = csv_report(data);
      const std::string ext = std::filesystem::path(path).extension().string();
      const std::string stem = path.substr(0, path.size() - ext.size());
      const std::string layers = stem + "-layers" + ext, sens = stem + "-sensitivity" + ext;
      write_file_atomically(path, c.runs);
      write_file_atomically(layers, c.layers);
      write_file_atomically(sens, c.sensitivity);
      return {path, layers, sens};
    }
  }
  return {};
}

}  // namespace mcw
