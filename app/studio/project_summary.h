// The Project panel's view of an engine Project, including check_project()'s problems.
#pragma once
#include <QString>

#include "engine/project/project.h"
#include "widgets/bridge_types.h"

namespace mcw::studio {

ui::ProjectSummary summarize_project(const Project& project, const QString& file, bool dirty);

}  // namespace mcw::studio
