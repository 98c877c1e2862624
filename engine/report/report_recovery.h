// The report's recovery section: the runs whose recipe fine-tuned the compressed model
// afterwards (a `recovery:` section), with their figures before and after and the curve
// of held-out KL per step they recorded.
#pragma once
#include <string>

#include "engine/report/report_data.h"

namespace mcw {

// Empty when no run recorded a recovery curve.
std::string recovery_html_section(const ReportData& d);

}  // namespace mcw
