#include "widgets/yaml_highlighter.h"

namespace mcw::ui {

static QTextCharFormat fmt(const QColor& c, bool bold = false) {
  QTextCharFormat f;
  f.setForeground(c);
  if (bold) f.setFontWeight(QFont::DemiBold);
  return f;
}

// Mid-saturation colours that read on light and dark backgrounds alike.
YamlHighlighter::YamlHighlighter(QTextDocument* document) : QSyntaxHighlighter(document) {
  const QTextCharFormat key = fmt(QColor(0x3d, 0x8e, 0xc9), true);
  rules_.push_back(
      {QRegularExpression(QStringLiteral("^\\s*(?:-\\s+)?([A-Za-z_][\\w.-]*)\\s*:")), key, 1});
  rules_.push_back(
      {QRegularExpression(QStringLiteral("[{,]\\s*([A-Za-z_][\\w.-]*)\\s*:")), key, 1});
  rules_.push_back(
      {QRegularExpression(QStringLiteral(
           "(?<=[:\\s\\[{,])(-?\\d+(?:\\.\\d+)?(?:[eE][-+]?\\d+)?)(?=\\s*(?:$|[,}\\]#]))")),
       fmt(QColor(0xc0, 0x6a, 0x2b)), 1});
  rules_.push_back({QRegularExpression(QStringLiteral("\\b(true|false|True|False|null)\\b")),
                    fmt(QColor(0x9b, 0x59, 0xb6)), 1});
  rules_.push_back({QRegularExpression(QStringLiteral("('[^']*'|\"[^\"]*\")")),
                    fmt(QColor(0x3a, 0x9d, 0x5d)), 1});
  comment_ = fmt(QColor(0x8a, 0x8f, 0x98));
  comment_.setFontItalic(true);
}

void YamlHighlighter::highlightBlock(const QString& text) {
  for (const Rule& r : rules_)
    for (auto it = r.re.globalMatch(text); it.hasNext();) {
      const QRegularExpressionMatch m = it.next();
      setFormat(int(m.capturedStart(r.group)), int(m.capturedLength(r.group)), r.format);
    }
  // A comment starts at '#' at the line start or after a space, outside quotes.
  bool single = false, dbl = false;
  for (int i = 0; i < text.size(); ++i) {
    const QChar c = text[i];
    if (c == QLatin1Char('\'') && !dbl)
      single = !single;
    else if (c == QLatin1Char('"') && !single)
      dbl = !dbl;
    else if (c == QLatin1Char('#') && !single && !dbl && (i == 0 || text[i - 1].isSpace())) {
      setFormat(i, int(text.size()) - i, comment_);
      break;
    }
  }
}

}  // namespace mcw::ui
