// The review report as one self-contained HTML file: inline CSS and inline SVG plots, no
// script, no external reference, so it renders the same with no network. Every string
// that comes from a model, a project, a recipe or a user is escaped. The markup is also
// well-formed XML (void elements self-closed) apart from the doctype.
#pragma once
#include <string>

#include "engine/report/report_data.h"

namespace mcw {

std::string html_report(const ReportData& data);

}  // namespace mcw
