// Start page: recent projects (newest first) and the demo projects that ship with MCW;
// activating one opens it.
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

class QListWidget;

namespace mcw::ui {

class StartPage : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit StartPage(IProjectContext& context, QWidget* parent = nullptr);
  ~StartPage() override;

  void onProjectLoaded() override { refresh(); }
  void refresh();

  QListWidget* recentList() const { return recent_; }
  QListWidget* demoList() const { return demos_; }

 private:
  IProjectContext& context_;
  QListWidget* recent_;
  QListWidget* demos_;
};

}  // namespace mcw::ui
