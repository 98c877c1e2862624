#include "app/studio/recipe_support.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QRegularExpression>

#include "engine/compress/algorithm.h"
#include "engine/core/error.h"

namespace mcw::studio {

using json = nlohmann::json;

static QString q(const std::string& s) { return QString::fromStdString(s); }

static QVariant to_variant(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return qlonglong(v.get<int64_t>());
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) return q(v.get<std::string>());
  return {};
}

static json to_json(const QVariant& v, const QString& key) {
  switch (v.typeId()) {
    case QMetaType::Bool:
      return v.toBool();
    case QMetaType::Int:
    case QMetaType::LongLong:
    case QMetaType::UInt:
    case QMetaType::ULongLong:
      return int64_t(v.toLongLong());
    case QMetaType::Double:
    case QMetaType::Float:
      return v.toDouble();
    case QMetaType::QString:
      return v.toString().toStdString();
    default:
      throw Error("recipe form", "key '" + key.toStdString() + "' has no value");
  }
}

QList<ui::AlgorithmSpecRow> algorithm_spec_rows() {
  QList<ui::AlgorithmSpecRow> out;
  for (const CompressAlgorithm& a : compress_algorithms()) {
    ui::AlgorithmSpecRow row{q(a.name), q(a.kind), q(a.help), {}};
    for (const ParamSpec& p : a.params) {
      ui::ParamSpecRow pr{q(p.key), q(p.type), to_variant(p.fallback), {}, p.min, p.max, q(p.help)};
      for (const json& v : p.allowed) pr.allowed.push_back(to_variant(v));
      row.params.push_back(pr);
    }
    out.push_back(row);
  }
  return out;
}

static QStringList q_list(const std::vector<std::string>& v) {
  QStringList out;
  for (const std::string& s : v) out << q(s);
  return out;
}

static std::vector<std::string> s_list(const QStringList& v) {
  std::vector<std::string> out;
  for (const QString& s : v) out.push_back(s.toStdString());
  return out;
}

ui::RecipeForm recipe_to_form(const Recipe& r) {
  ui::RecipeForm f;
  f.name = q(r.name);
  f.description = q(r.description);
  for (auto& [k, v] : r.calibration.items()) f.calibration[q(k)] = to_variant(v);
  for (auto& [k, v] : r.recovery.items()) f.recovery[q(k)] = to_variant(v);
  for (const RecipeStage& s : r.stages) {
    ui::RecipeStageForm sf;
    sf.algorithm = q(s.algorithm);
    for (auto& [k, v] : s.params.items()) sf.params[q(k)] = to_variant(v);
    sf.targets = q_list(s.targets);
    sf.ignore = q_list(s.ignore);
    sf.line = s.line;
    f.stages.push_back(sf);
  }
  return f;
}

Recipe form_to_recipe(const ui::RecipeForm& f) {
  Recipe r;
  r.name = f.name.toStdString();
  r.description = f.description.toStdString();
  for (auto it = f.calibration.begin(); it != f.calibration.end(); ++it)
    r.calibration[it.key().toStdString()] = to_json(it.value(), it.key());
  for (auto it = f.recovery.begin(); it != f.recovery.end(); ++it)
    r.recovery[it.key().toStdString()] = to_json(it.value(), it.key());
  for (const ui::RecipeStageForm& sf : f.stages) {
    RecipeStage s;
    s.algorithm = sf.algorithm.toStdString();
    for (auto it = sf.params.begin(); it != sf.params.end(); ++it)
      s.params[it.key().toStdString()] = to_json(it.value(), it.key());
    s.targets = s_list(sf.targets);
    s.ignore = s_list(sf.ignore);
    r.stages.push_back(std::move(s));
  }
  return r;
}

std::vector<Metric> estimate_metrics(const ui::ResourceEstimateRow& e) {
  if (!e.valid) return {};
  return {{"estimate_seconds", e.seconds}, {"estimate_peak_bytes", double(e.peak_bytes)}};
}

int error_line(const std::string& message) {
  static const QRegularExpression re(QStringLiteral("\\bline (\\d+)"));
  const QRegularExpressionMatch m = re.match(q(message));
  return m.hasMatch() ? m.captured(1).toInt() : 0;
}

ui::ResourceEstimateRow estimate_row(const Recipe& r, const RecipeCheckContext& ctx) {
  ui::ResourceEstimateRow row;
  row.free_bytes = ctx.free_bytes;
  if (!ctx.model) {
    row.note = QStringLiteral("open a llama-family model to estimate memory and time");
    return row;
  }
  const ResourceEstimate e = estimate_resources(*ctx.model, r, ctx.settings);
  row.valid = true;
  row.peak_bytes = e.peak_bytes;
  row.seconds = e.seconds;
  return row;
}

ui::RecipeCheck check_recipe_text(const std::string& text, const std::string& source,
                                  const RecipeCheckContext& ctx) {
  ui::RecipeCheck out;
  try {
    const Recipe r = parse_recipe(text, source);
    if (ctx.model) {
      check_targets(r, ctx.model->tensor_names);
      // compress_llama only touches linears: a stage that matches only norms does nothing.
      std::vector<std::string> linears;
      for (const LinearShape& l : ctx.model->linears) linears.push_back(l.name);
      for (size_t i = 0; i < r.stages.size(); ++i)
        if (stage_tensors(r.stages[i], linears).empty())
          throw Error(source, "line " + std::to_string(r.stages[i].line) + ": stage " +
                                  std::to_string(i + 1) + " (" + r.stages[i].algorithm +
                                  "): its targets match no linear weight of the model");
    }
    out.ok = true;
    out.form = recipe_to_form(r);
    out.estimate = estimate_row(r, ctx);
  } catch (const Error& e) {
    out.message = q(e.message());
    out.line = error_line(e.message());
  } catch (const std::exception& e) {  // yaml-cpp's own exceptions for odd documents
    out.message = q(e.what());
    out.line = error_line(e.what());
  }
  return out;
}

QList<ui::RecipePreset> read_recipe_presets(const QStringList& dirs) {
  QList<ui::RecipePreset> out;
  QStringList seen;
  for (const QString& d : dirs) {
    const QDir dir(d);
    for (const QFileInfo& fi : dir.entryInfoList(
             {QStringLiteral("*.yaml"), QStringLiteral("*.yml")}, QDir::Files, QDir::Name)) {
      if (fi.size() > (1 << 20) || seen.contains(fi.fileName())) continue;
      QFile f(fi.absoluteFilePath());
      if (!f.open(QIODevice::ReadOnly)) continue;
      seen << fi.fileName();
      out.push_back(
          {fi.completeBaseName(), fi.absoluteFilePath(), QString::fromUtf8(f.readAll()), false});
    }
  }
  return out;
}

std::optional<quint64> mem_available_bytes(const QString& meminfo) {
  QFile f(meminfo);
  if (!f.open(QIODevice::ReadOnly | QIODevice::Text)) return std::nullopt;
  for (const QByteArray& line : f.readAll().split('\n')) {
    if (!line.startsWith("MemAvailable:")) continue;
    const QList<QByteArray> parts = line.simplified().split(' ');
    bool ok = false;
    const quint64 kb = parts.size() >= 2 ? parts[1].toULongLong(&ok) : 0;
    if (ok) return kb * 1024;
  }
  return std::nullopt;
}

}  // namespace mcw::studio
