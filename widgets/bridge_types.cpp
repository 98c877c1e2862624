#include "widgets/bridge_types.h"

#include <cmath>

namespace mcw::ui {

QString job_state_name(JobState s) {
  switch (s) {
    case JobState::Running: return QStringLiteral("running");
    case JobState::Succeeded: return QStringLiteral("done");
    case JobState::Failed: return QStringLiteral("failed");
    case JobState::Cancelled: return QStringLiteral("cancelled");
  }
  return {};
}

QString format_bytes(quint64 bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? QStringLiteral("%1 B").arg(bytes)
                : QStringLiteral("%1 %2").arg(v, 0, 'f', v < 10 ? 2 : 1).arg(units[u]);
}

QString format_count(quint64 n) {
  if (n < 10000) return QString::number(n);
  static const char* units[] = {"", "K", "M", "G", "T"};
  double v = double(n);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return QStringLiteral("%1 %2").arg(v, 0, 'f', v < 10 ? 2 : 1).arg(units[u]);
}

QString format_shape(const QList<qint64>& shape) {
  QStringList parts;
  for (qint64 d : shape) parts << QString::number(d);
  return QLatin1Char('[') + parts.join(QStringLiteral(", ")) + QLatin1Char(']');
}

QString format_seconds(double s) {
  if (s < 0 || !std::isfinite(s)) return QStringLiteral("–");
  if (s < 60) return QStringLiteral("%1 s").arg(int(std::ceil(s)));
  const int t = int(std::ceil(s));
  return QStringLiteral("%1:%2").arg(t / 60).arg(t % 60, 2, 10, QLatin1Char('0'));
}

}  // namespace mcw::ui
