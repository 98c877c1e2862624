#include "engine/report/report_recovery.h"

#include "engine/report/report_text.h"
#include "engine/report/svg_plot.h"

namespace mcw {

std::string recovery_html_section(const ReportData& d) {
  std::vector<const RunRecord*> runs;
  for (const RunRecord& r : d.runs)
    if (!r.curve.empty() && r.metric("kl_before_recovery")) runs.push_back(&r);
  if (runs.empty()) return {};
  auto num = [](const RunRecord& r, const char* name, int significant = 4) {
    const auto v = r.metric(name);
    return v ? format_general(*v, significant) : std::string("\xE2\x80\x94");
  };
  std::string s =
      "<section id=\"recovery\"><h2>Recovery fine-tuning</h2>\n<p class=\"note\">Runs whose "
      "recipe trained the compressed model afterwards (LoRA adapters merged and re-coded on each "
      "layer's grid, or quantisation-aware training), distilled from the uncompressed model on "
      "the calibration text. Before and after are the project's evaluation; the curve is the "
      "held-out KL against the uncompressed model measured during training. Re-coding loss: "
      "the largest share of a layer's update that re-coding on its grid lost.</p>\n"
      "<div class=\"scroll\"><table>\n<tr><th>Run</th><th>Recipe</th><th class=\"num\">Steps</th>"
      "<th class=\"num\">Seconds</th><th class=\"num\">Perplexity before</th><th class=\"num\">"
      "after</th><th class=\"num\">KL before</th><th class=\"num\">after</th><th class=\"num\">"
      "Re-coding loss</th></tr>\n";
  ScatterPlot plot;
  plot.title = "Held-out KL during recovery";
  plot.x_label = "step";
  plot.y_label = "KL against the uncompressed model";
  plot.label_points = false, plot.front_legend = false;
  for (const RunRecord* r : runs) {
    const std::string id = std::to_string(r->info.id);
    s += "<tr><td class=\"num\">" + id + "</td><td>" + escape_html(r->info.recipe_name) +
         "</td><td class=\"num\">" + num(*r, "recovery_steps") + "</td><td class=\"num\">" +
         num(*r, "recovery_seconds", 3) + "</td><td class=\"num\">" +
         num(*r, "perplexity_before_recovery") + "</td><td class=\"num\">" + num(*r, "perplexity") +
         "</td><td class=\"num\">" + num(*r, "kl_before_recovery") + "</td><td class=\"num\">" +
         num(*r, "kl") + "</td><td class=\"num\">" + num(*r, "recovery_recode_loss_max", 3) +
         "</td></tr>\n";
    for (const CurvePoint& p : r->curve) {
      if (p.series != "eval_kl") continue;
      ScatterPoint pt;
      pt.x = double(p.step), pt.y = p.value, pt.id = r->info.id;
      pt.tooltip = "run " + id + " (" + r->info.recipe_name + "), step " + std::to_string(p.step) +
                   ": KL " + format_general(p.value);
      plot.points.push_back(std::move(pt));
    }
  }
  s += "</table></div>\n";
  return s + "<figure>" + scatter_svg(plot) + "</figure>\n</section>\n";
}

}  // namespace mcw
