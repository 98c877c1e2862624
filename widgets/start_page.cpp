#include "widgets/start_page.h"

#include <QFileInfo>
#include <QLabel>
#include <QListWidget>
#include <QVBoxLayout>

namespace mcw::ui {

static QLabel* heading(const QString& text, QWidget* parent) {
  auto* l = new QLabel(text, parent);
  QFont f = l->font();
  f.setBold(true);
  l->setFont(f);
  return l;
}

StartPage::StartPage(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  recent_ = new QListWidget(this);
  recent_->setObjectName(QStringLiteral("recentList"));
  demos_ = new QListWidget(this);
  demos_->setObjectName(QStringLiteral("demoList"));
  auto* hint = new QLabel(tr("Double-click a project to open it, or use File ▸ Open Project…"),
                          this);
  hint->setWordWrap(true);

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(heading(tr("Recent projects"), this));
  layout->addWidget(recent_, 2);
  layout->addWidget(heading(tr("Demo projects"), this));
  layout->addWidget(demos_, 1);
  layout->addWidget(hint);

  for (QListWidget* list : {recent_, demos_})
    connect(list, &QListWidget::itemActivated, this, [this](QListWidgetItem* item) {
      context_.openProject(item->data(Qt::UserRole).toString());
    });
  context_.addViewer(this);
  refresh();
}

StartPage::~StartPage() { context_.removeViewer(this); }

void StartPage::refresh() {
  auto fill = [](QListWidget* list, const QStringList& paths, const QString& empty) {
    list->clear();
    for (const QString& p : paths) {
      const QFileInfo info(p);
      auto* item = new QListWidgetItem(info.completeBaseName() + QStringLiteral("  —  ") +
                                       info.absolutePath(), list);
      item->setData(Qt::UserRole, p);
      item->setToolTip(p);
      if (!info.exists()) item->setForeground(QColor(224, 80, 74));
    }
    if (paths.isEmpty()) {
      auto* item = new QListWidgetItem(empty, list);
      item->setFlags(Qt::NoItemFlags);
    }
  };
  fill(recent_, context_.recentProjects(), tr("(none yet)"));
  fill(demos_, context_.demoProjects(), tr("(no demo projects installed)"));
}

}  // namespace mcw::ui
