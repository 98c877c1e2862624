#include "engine/report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>

#include "engine/report/report_text.h"

namespace mcw {

namespace {

constexpr const char* kFont = "system-ui, Segoe UI, Helvetica, Arial, sans-serif";
constexpr const char* kInk = "#1f2937";
constexpr const char* kMuted = "#6b7280";
constexpr const char* kGrid = "#e5e7eb";
constexpr const char* kAccent = "#2563eb";
constexpr double kCharWidth = 6.2;  // average advance of an 11 px sans-serif character

// Series colours, distinguishable for the common forms of colour blindness.
constexpr const char* kPalette[] = {"#2563eb", "#e8590c", "#0d9488",
                                    "#a21caf", "#ca8a04", "#475569"};

std::string n1(double v) { return format_fixed(v, 1); }  // an SVG coordinate

bool finite(double v) { return std::isfinite(v); }

std::string open_svg(int w, int h, bool standalone, const std::string& title) {
  std::string s = "<svg";
  if (standalone) s += " xmlns=\"http://www.w3.org/2000/svg\"";
  s += " width=\"" + std::to_string(w) + "\" height=\"" + std::to_string(h) + "\" viewBox=\"0 0 " +
       std::to_string(w) + " " + std::to_string(h) + "\" role=\"img\" aria-label=\"" +
       escape_html(title) + "\" font-family=\"" + kFont + "\" font-size=\"11\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  return s;
}

std::string text(double x, double y, const std::string& content, const char* anchor = "start",
                 const std::string& extra = "") {
  return "<text x=\"" + n1(x) + "\" y=\"" + n1(y) + "\" text-anchor=\"" + anchor + "\"" +
         (extra.empty() ? "" : " " + extra) + ">" + escape_html(content) + "</text>\n";
}

std::string line(double x1, double y1, double x2, double y2, const char* stroke,
                 const std::string& extra = "") {
  return "<line x1=\"" + n1(x1) + "\" y1=\"" + n1(y1) + "\" x2=\"" + n1(x2) + "\" y2=\"" + n1(y2) +
         "\" stroke=\"" + stroke + "\"" + (extra.empty() ? "" : " " + extra) + "/>\n";
}

std::string title_text(double x, double y, const std::string& title) {
  return text(x, y, title, "start",
              "font-size=\"14\" font-weight=\"600\" fill=\"" + std::string(kInk) + "\"");
}

std::string tick_label(double v) {
  if (v == 0) return "0";
  return format_general(v, 6);
}

std::string no_data_svg(const std::string& title, bool standalone) {
  std::string s = open_svg(360, 80, standalone, title);
  s += title_text(8, 20, title);
  s += text(180, 55, "no data", "middle", "fill=\"" + std::string(kMuted) + "\"");
  return s + "</svg>\n";
}

// Labels on the left of a chart: width in pixels for at most `max_chars` characters.
double label_width(const std::vector<std::string>& labels, size_t max_chars) {
  size_t longest = 0;
  for (const auto& l : labels) longest = std::max(longest, std::min(utf8_length(l), max_chars));
  return double(longest) * kCharWidth;
}

struct Rgb {
  double r, g, b;
};

// A sequential scale from pale (small values) to dark red (large ones).
std::string colour_at(double t, bool* dark = nullptr) {
  static const Rgb stops[] = {
      {255, 245, 235}, {253, 208, 162}, {249, 140, 82}, {214, 54, 36}, {120, 10, 20}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  const int i = std::min(3, int(t));
  const double f = t - i;
  const Rgb& a = stops[i];
  const Rgb& b = stops[i + 1];
  const double r = a.r + (b.r - a.r) * f, g = a.g + (b.g - a.g) * f, bl = a.b + (b.b - a.b) * f;
  if (dark) *dark = (0.299 * r + 0.587 * g + 0.114 * bl) < 140;
  char buf[8];
  static const char* hex = "0123456789abcdef";
  const int c[3] = {int(std::lround(r)), int(std::lround(g)), int(std::lround(bl))};
  buf[0] = '#';
  for (int k = 0; k < 3; ++k) buf[1 + 2 * k] = hex[c[k] >> 4], buf[2 + 2 * k] = hex[c[k] & 15];
  return std::string(buf, 7);
}

}  // namespace

double PlotAxis::fraction(double v) const {
  if (log) return (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
  return (v - lo) / (hi - lo);
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> out;
  if (!finite(lo) || !finite(hi) || hi < lo || target < 1) return out;
  if (hi == lo) return {lo};
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
  for (double k = first; k <= last && out.size() < 100; ++k) {
    const double v = k * step;
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return out;
}

std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> out;
  if (!(lo > 0) || !finite(lo) || !finite(hi) || hi < lo) return out;
  const double decades = std::log10(hi / lo);
  if (decades < 1) {
    for (double v : nice_ticks(lo, hi, 5))
      if (v > 0) out.push_back(v);
    return out;
  }
  const int d0 = int(std::floor(std::log10(lo))), d1 = int(std::ceil(std::log10(hi)));
  const int every = std::max(1, (d1 - d0) / 8);
  for (int d = d0; d <= d1; ++d) {
    const double p = std::pow(10.0, d);
    const double mults[] = {1, 2, 5};
    for (double m : mults) {
      if (m != 1 && decades > 3) continue;
      if (m == 1 && (d - d0) % every) continue;
      const double v = m * p;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push_back(v);
    }
  }
  return out;
}

bool spans_decades(const std::vector<double>& values, double decades) {
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (double v : values) {
    if (!finite(v)) continue;
    if (v <= 0) return false;
    lo = std::min(lo, v), hi = std::max(hi, v);
  }
  return hi > 0 && std::log10(hi / lo) > decades;
}

PlotAxis fit_axis(const std::vector<double>& values, bool log, bool include_zero) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values)
    if (finite(v) && (!log || v > 0)) lo = std::min(lo, v), hi = std::max(hi, v);
  PlotAxis a;
  a.log = log;
  if (lo > hi) {
    a.lo = log ? 1 : 0, a.hi = log ? 10 : 1;
    return a;
  }
  if (log) {
    const double l0 = std::log10(lo), l1 = std::log10(hi);
    const double pad = l1 > l0 ? (l1 - l0) * 0.08 : 0.15;
    a.lo = std::pow(10.0, l0 - pad), a.hi = std::pow(10.0, l1 + pad);
    return a;
  }
  if (include_zero) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
  const double span = hi - lo;
  const double pad = span > 0 ? span * 0.06 : std::max(std::fabs(hi) * 0.1, 1.0);
  a.lo = (include_zero && lo == 0) ? 0 : lo - pad;
  a.hi = hi + pad;
  return a;
}

std::string scatter_svg(const ScatterPlot& p) {
  std::vector<const ScatterPoint*> pts;
  std::vector<double> xs, ys;
  for (const ScatterPoint& q : p.points) {
    if (!finite(q.x) || !finite(q.y) || (p.log_x && q.x <= 0) || (p.log_y && q.y <= 0)) continue;
    pts.push_back(&q), xs.push_back(q.x), ys.push_back(q.y);
  }
  const int W = std::max(p.width, 240), H = std::max(p.height, 200);
  const double L = 72, R = 28, T = 48, B = 52;
  const double pw = W - L - R, ph = H - T - B;
  const PlotAxis ax = fit_axis(xs, p.log_x), ay = fit_axis(ys, p.log_y);
  auto px = [&](double v) { return L + ax.fraction(v) * pw; };
  auto py = [&](double v) { return T + (1 - ay.fraction(v)) * ph; };

  std::string s = open_svg(W, H, p.standalone, p.title);
  s += title_text(L, 22, p.title);
  // Grid, ticks and tick labels.
  s += "<g class=\"axes\" fill=\"" + std::string(kMuted) + "\">\n";
  for (double v : p.log_x ? log_ticks(ax.lo, ax.hi) : nice_ticks(ax.lo, ax.hi)) {
    const double x = px(v);
    s += line(x, T, x, T + ph, kGrid);
    s += text(x, T + ph + 16, tick_label(v), "middle");
  }
  for (double v : p.log_y ? log_ticks(ay.lo, ay.hi) : nice_ticks(ay.lo, ay.hi)) {
    const double y = py(v);
    s += line(L, y, L + pw, y, kGrid);
    s += text(L - 6, y + 4, tick_label(v), "end");
  }
  s += "<rect x=\"" + n1(L) + "\" y=\"" + n1(T) + "\" width=\"" + n1(pw) + "\" height=\"" + n1(ph) +
       "\" fill=\"none\" stroke=\"#9ca3af\"/>\n";
  s += text(L + pw / 2, H - 12, p.x_label + (p.log_x ? " (log scale)" : ""), "middle",
            "fill=\"" + std::string(kInk) + "\"");
  const double yl = T + ph / 2;
  s += text(16, yl, p.y_label + (p.log_y ? " (log scale)" : ""), "middle",
            "fill=\"" + std::string(kInk) + "\" transform=\"rotate(-90 16 " + n1(yl) + ")\"");
  s += "</g>\n";
  if (pts.empty()) {
    s += text(L + pw / 2, T + ph / 2, "no runs with these metrics yet", "middle",
              "fill=\"" + std::string(kMuted) + "\"");
    return s + "</svg>\n";
  }

  // The Pareto front as a staircase: from each front point right to the next one's x,
  // then down to its y.
  std::vector<const ScatterPoint*> front;
  for (const ScatterPoint* q : pts)
    if (q->front) front.push_back(q);
  std::sort(front.begin(), front.end(), [](const ScatterPoint* a, const ScatterPoint* b) {
    return a->x != b->x ? a->x < b->x : a->y > b->y;
  });
  if (front.size() > 1) {
    std::string d = "M" + n1(px(front[0]->x)) + " " + n1(py(front[0]->y));
    for (size_t i = 1; i < front.size(); ++i)
      d += " H" + n1(px(front[i]->x)) + " V" + n1(py(front[i]->y));
    s += "<path class=\"front-line\" d=\"" + d + "\" fill=\"none\" stroke=\"" + kAccent +
         "\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\n";
  }

  // Radius by the third value, area-proportional between 4 and 11 px.
  double smin = std::numeric_limits<double>::infinity(), smax = -smin;
  for (const ScatterPoint* q : pts)
    if (finite(q->size)) smin = std::min(smin, q->size), smax = std::max(smax, q->size);
  auto radius = [&](double v) {
    if (!finite(v) || !(smax > smin)) return 6.0;
    return 4.0 + 7.0 * std::sqrt((v - smin) / (smax - smin));
  };
  // Non-front points first, so front points are drawn on top.
  std::vector<const ScatterPoint*> order = pts;
  std::stable_partition(order.begin(), order.end(), [](auto* q) { return !q->front; });
  // Labels go beside their point, on whichever side overlaps the least with the labels
  // and points already placed (front points are placed first: they matter most).
  struct Box {
    double x0, y0, x1, y1;
  };
  auto overlap = [](const Box& a, const Box& b) {
    const double w = std::min(a.x1, b.x1) - std::max(a.x0, b.x0);
    const double h = std::min(a.y1, b.y1) - std::max(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0.0;
  };
  std::vector<Box> taken;
  for (const ScatterPoint* q : pts) {
    const double x = px(q->x), y = py(q->y), r = radius(q->size);
    taken.push_back({x - r, y - r, x + r, y + r});
  }
  std::map<const ScatterPoint*, std::string> labels;
  std::vector<const ScatterPoint*> label_order = order;
  std::reverse(label_order.begin(), label_order.end());
  for (const ScatterPoint* q : p.label_points ? label_order : std::vector<const ScatterPoint*>{}) {
    if (q->label.empty()) continue;
    const std::string label = truncate_utf8(q->label, 28);
    const double x = px(q->x), y = py(q->y), r = radius(q->size);
    const double w = 6.0 * double(utf8_length(label)), h = 12;
    struct Spot {
      double tx, ty;
      const char* anchor;
    };
    const Spot spots[] = {{x + r + 4, y - r * 0.5 - 2, "start"},
                          {x + r + 4, y + r + 9, "start"},
                          {x - r - 4, y - r * 0.5 - 2, "end"},
                          {x - r - 4, y + r + 9, "end"},
                          {x, y - r - 5, "middle"},
                          {x, y + r + 14, "middle"}};
    double best_cost = HUGE_VAL;
    Spot best = spots[0];
    Box best_box{};
    for (const Spot& sp : spots) {
      const double x0 = sp.anchor[0] == 's'   ? sp.tx
                        : sp.anchor[0] == 'e' ? sp.tx - w
                                              : sp.tx - w / 2;
      const Box b{x0, sp.ty - h + 2, x0 + w, sp.ty + 2};
      double cost = 0;
      for (const Box& t : taken) cost += overlap(b, t);
      if (b.x0 < L || b.x1 > L + pw || b.y0 < T || b.y1 > T + ph) cost += 1e6;
      if (cost < best_cost) best_cost = cost, best = sp, best_box = b;
    }
    taken.push_back(best_box);
    labels[q] = text(best.tx, best.ty, label, best.anchor,
                     "fill=\"" + std::string(kInk) + "\" font-size=\"10.5\"");
  }
  for (const ScatterPoint* q : order) {
    const double x = px(q->x), y = py(q->y), r = radius(q->size);
    s += "<g class=\"pt" + std::string(q->front ? " front" : "") +
         (q->reference ? " reference" : "") + "\" data-id=\"" + std::to_string(q->id) + "\">";
    s += "<title>" + escape_html(q->tooltip.empty() ? q->label : q->tooltip) + "</title>";
    const std::string fill = q->reference ? "#f59e0b" : q->front ? kAccent : "#cbd5e1";
    const std::string stroke = q->front ? "#1e3a8a" : q->reference ? "#b45309" : "#64748b";
    if (q->reference)
      s += "<polygon points=\"" + n1(x) + "," + n1(y - r - 1) + " " + n1(x + r + 1) + "," + n1(y) +
           " " + n1(x) + "," + n1(y + r + 1) + " " + n1(x - r - 1) + "," + n1(y) + "\" fill=\"" +
           fill + "\" stroke=\"" + stroke + "\"" + (q->front ? " stroke-width=\"1.5\"" : "") + "/>";
    else
      s += "<circle cx=\"" + n1(x) + "\" cy=\"" + n1(y) + "\" r=\"" + n1(r) + "\" fill=\"" + fill +
           "\" fill-opacity=\"0.85\" stroke=\"" + stroke + "\"/>";
    if (const auto it = labels.find(q); it != labels.end()) s += it->second;
    s += "</g>\n";
  }

  // Legend, top right.
  std::string legend = "<g class=\"legend\" fill=\"" + std::string(kMuted) + "\">";
  double lx = W - R;
  auto item = [&](const std::string& label, const std::string& mark) {
    const double w = kCharWidth * double(utf8_length(label)) + 18;
    lx -= w;
    legend += mark.empty() ? "" : "<g transform=\"translate(" + n1(lx) + " 30)\">" + mark + "</g>";
    legend += text(lx + 10, 34, label);
    lx -= 10;
  };
  if (!p.size_label.empty() && smax > smin) item("radius: " + p.size_label, "");
  bool any_ref = false;
  for (const ScatterPoint* q : pts) any_ref |= q->reference;
  if (any_ref)
    item("baseline", "<polygon points=\"0,-5 5,0 0,5 -5,0\" fill=\"#f59e0b\" stroke=\"#b45309\"/>");
  if (p.front_legend) {
    item("other runs", "<circle r=\"4\" fill=\"#cbd5e1\" stroke=\"#64748b\"/>");
    item("Pareto front", "<circle r=\"4\" fill=\"" + std::string(kAccent) + "\"/>");
  }
  s += legend + "</g>\n";
  return s + "</svg>\n";
}

std::string heatmap_svg(const Heatmap& m) {
  if (m.values.size() != m.rows.size() * m.columns.size())
    throw std::invalid_argument("heatmap: values do not match rows x columns");
  if (m.rows.empty() || m.columns.empty()) return no_data_svg(m.title, m.standalone);
  auto key = [&](double v) { return m.log_scale ? std::log10(v) : v; };
  double vmin = std::numeric_limits<double>::infinity(), vmax = -vmin;
  for (double v : m.values)
    if (finite(v) && (!m.log_scale || v > 0))
      vmin = std::min(vmin, key(v)), vmax = std::max(vmax, key(v));
  const bool any = vmin <= vmax;

  const double left = 12 + label_width(m.rows, 48);
  const double cell_w = 64, cell_h = 20;
  size_t longest_col = 0;
  for (const auto& c : m.columns)
    longest_col = std::max(longest_col, std::min<size_t>(utf8_length(c), 24));
  const bool rotate = double(longest_col) * kCharWidth > cell_w - 6;
  const double header = rotate ? 12 + double(longest_col) * kCharWidth * 0.72 : 22;
  const double top = 36 + header;
  const double gw = cell_w * double(m.columns.size()), gh = cell_h * double(m.rows.size());
  const double legend_x = left + gw + 24;
  const int W = int(legend_x + 110), H = int(top + std::max(gh, 140.0) + 24);

  std::string s = open_svg(W, H, m.standalone, m.title);
  s += title_text(8, 20, m.title);
  for (size_t c = 0; c < m.columns.size(); ++c) {
    const double x = left + cell_w * (double(c) + 0.5);
    const std::string label = truncate_utf8(m.columns[c], 24);
    if (rotate)
      s += text(x, top - 6, label, "start",
                "fill=\"" + std::string(kInk) + "\" transform=\"rotate(-45 " + n1(x) + " " +
                    n1(top - 6) + ")\"");
    else
      s += text(x, top - 7, label, "middle", "fill=\"" + std::string(kInk) + "\"");
  }
  for (size_t r = 0; r < m.rows.size(); ++r) {
    const double y = top + cell_h * double(r);
    s += "<g class=\"row\"><title>" + escape_html(m.rows[r]) + "</title>" +
         text(left - 6, y + cell_h / 2 + 4, truncate_utf8(m.rows[r], 48), "end",
              "fill=\"" + std::string(kInk) + "\"") +
         "</g>\n";
    for (size_t c = 0; c < m.columns.size(); ++c) {
      const double v = m.values[r * m.columns.size() + c];
      const double x = left + cell_w * double(c);
      const bool usable = finite(v) && (!m.log_scale || v > 0);
      bool dark = false;
      const std::string fill =
          usable ? colour_at(vmax > vmin ? (key(v) - vmin) / (vmax - vmin) : 0.5, &dark)
                 : "#f3f4f6";
      const std::string shown = finite(v) ? format_general(v, 3) : "not measured";
      s += "<g class=\"cell\"><title>" + escape_html(m.rows[r]) + " \xC2\xB7 " +
           escape_html(m.columns[c]) + ": " + escape_html(shown) + "</title>";
      s += "<rect x=\"" + n1(x) + "\" y=\"" + n1(y) + "\" width=\"" + n1(cell_w - 1) +
           "\" height=\"" + n1(cell_h - 1) + "\" fill=\"" + fill + "\"/>";
      if (m.show_values && finite(v))
        s += text(x + cell_w / 2, y + cell_h / 2 + 3.5, format_general(v, 3), "middle",
                  std::string("font-size=\"10\" fill=\"") + (dark ? "#ffffff" : kInk) + "\"");
      s += "</g>\n";
    }
  }
  // Colour legend: a stepped bar with the scale's ends and middle labelled.
  if (any) {
    const double lh = std::min(std::max(gh, 100.0), 220.0), lw = 14;
    const int steps = 32;
    s += "<g class=\"legend\">";
    for (int i = 0; i < steps; ++i) {
      const double t = 1 - (i + 0.5) / steps;
      s += "<rect x=\"" + n1(legend_x) + "\" y=\"" + n1(top + lh * i / steps) + "\" width=\"" +
           n1(lw) + "\" height=\"" + n1(lh / steps + 0.5) + "\" fill=\"" + colour_at(t) + "\"/>";
    }
    for (int i = 0; i <= 4; ++i) {
      const double k = vmax - (vmax - vmin) * i / 4;
      const double v = m.log_scale ? std::pow(10.0, k) : k;
      s += text(legend_x + lw + 4, top + lh * i / 4 + 4, format_general(v, 3), "start",
                "fill=\"" + std::string(kMuted) + "\"");
    }
    s += text(legend_x, top + lh + 16, m.value_label + (m.log_scale ? " (log)" : ""), "start",
              "fill=\"" + std::string(kMuted) + "\"");
    s += "</g>\n";
  }
  return s + "</svg>\n";
}

std::string bar_chart_svg(const BarChart& c) {
  if (c.labels.empty() || c.series.empty()) return no_data_svg(c.title, c.standalone);
  std::vector<double> all;
  for (const BarSeries& s : c.series) all.insert(all.end(), s.values.begin(), s.values.end());
  const bool log = c.log_scale && spans_decades(all, 0);
  const PlotAxis ax = fit_axis(all, log, !log);
  const double left = 12 + label_width(c.labels, 48);
  const double right = 64;  // room for the value printed after the longest bar
  const size_t ns = c.series.size();
  const double bar_h = ns == 1 ? 12 : 9, row_h = bar_h * double(ns) + 6;
  const int W = std::max(c.width, int(left + 260));
  // The legend (several series only), wrapped onto as many lines as it needs.
  std::string legend;
  double legend_bottom = 26;
  if (ns > 1) {
    double lx = 8, ly = 31;
    for (size_t k = 0; k < ns; ++k) {
      const std::string name = truncate_utf8(c.series[k].name, 32);
      const double w = 30 + kCharWidth * double(utf8_length(name));
      if (lx > 8 && lx + w > W - 8) lx = 8, ly += 16;
      legend += "<rect x=\"" + n1(lx) + "\" y=\"" + n1(ly) +
                "\" width=\"10\" height=\"10\" fill=\"" + kPalette[k % 6] + "\"/>";
      legend += text(lx + 14, ly + 9, name, "start", "fill=\"" + std::string(kInk) + "\"");
      lx += w;
    }
    legend_bottom = ly + 14;
  }
  const double top = legend_bottom + 18;
  const double pw = W - left - right, ph = row_h * double(c.labels.size());
  const int H = int(top + ph + 40);
  auto px = [&](double v) { return left + std::clamp(ax.fraction(v), 0.0, 1.0) * pw; };
  const double base = log ? left : px(std::max(ax.lo, 0.0));

  std::string s = open_svg(W, H, c.standalone, c.title);
  s += title_text(8, 20, c.title);
  s += legend;
  s += "<g class=\"axes\" fill=\"" + std::string(kMuted) + "\">\n";
  for (double v : log ? log_ticks(ax.lo, ax.hi) : nice_ticks(ax.lo, ax.hi)) {
    const double x = px(v);
    s += line(x, top - 4, x, top + ph, kGrid);
    s += text(x, top + ph + 14, tick_label(v), "middle");
  }
  s += text(left + pw / 2, top + ph + 32, c.value_label + (log ? " (log scale)" : ""), "middle",
            "fill=\"" + std::string(kInk) + "\"");
  s += "</g>\n";
  for (size_t r = 0; r < c.labels.size(); ++r) {
    const double y0 = top + row_h * double(r) + 3;
    s += "<g class=\"row\"><title>" + escape_html(c.labels[r]) + "</title>" +
         text(left - 6, y0 + (row_h - 6) / 2 + 4, truncate_utf8(c.labels[r], 48), "end",
              "fill=\"" + std::string(kInk) + "\"") +
         "</g>\n";
    for (size_t k = 0; k < ns; ++k) {
      const double v = r < c.series[k].values.size() ? c.series[k].values[r] : NAN;
      if (!finite(v) || (log && v <= 0)) continue;
      const double y = y0 + bar_h * double(k), x = px(v);
      const double x0 = std::min(base, x), w = std::max(std::fabs(x - base), 1.0);
      s += "<g class=\"bar\"><title>" + escape_html(c.labels[r]) +
           (ns > 1 ? " \xC2\xB7 " + escape_html(c.series[k].name) : std::string()) + ": " +
           escape_html(format_general(v, 4)) + "</title>";
      s += "<rect x=\"" + n1(x0) + "\" y=\"" + n1(y) + "\" width=\"" + n1(w) + "\" height=\"" +
           n1(bar_h - 1) + "\" fill=\"" + kPalette[k % 6] + "\"/>";
      if (ns == 1)
        s += text(x0 + w + 4, y + bar_h - 2.5, format_general(v, 3), "start",
                  "font-size=\"10\" fill=\"" + std::string(kMuted) + "\"");
      s += "</g>\n";
    }
  }
  s += line(base, top - 4, base, top + ph, "#9ca3af");
  return s + "</svg>\n";
}

}  // namespace mcw
