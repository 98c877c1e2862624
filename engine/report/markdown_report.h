// The report's facts and tables as Markdown (GitHub-flavoured tables): table cells go
// through escape_markdown_cell, recipes sit in fenced code blocks whose fence is longer
// than any backtick run in the recipe.
#pragma once
#include <string>

#include "engine/report/report_data.h"

namespace mcw {

std::string markdown_report(const ReportData& data);

}  // namespace mcw
