// A light YAML highlighter for the recipe editor: keys, comments, numbers, booleans and
// quoted strings, line by line (recipes never need multi-line scalars).
#pragma once
#include <QRegularExpression>
#include <QSyntaxHighlighter>
#include <QTextCharFormat>

namespace mcw::ui {

class YamlHighlighter : public QSyntaxHighlighter {
  Q_OBJECT
 public:
  explicit YamlHighlighter(QTextDocument* document);

 protected:
  void highlightBlock(const QString& text) override;

 private:
  struct Rule {
    QRegularExpression re;
    QTextCharFormat format;
    int group = 0;
  };
  QList<Rule> rules_;
  QTextCharFormat comment_;
};

}  // namespace mcw::ui
