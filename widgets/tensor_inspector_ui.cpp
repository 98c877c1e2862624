// The tensor inspector's Dear ImGui frame: header and mode switch, the heatmap with zoom,
// pan and tooltips, the colour scale, and the histogram.
#ifdef MCW_WIDGETS_VULKAN
#include <imgui.h>

#include <algorithm>
#include <cmath>

#include "widgets/imgui_vulkan_renderer.h"
#include "widgets/tensor_inspector.h"

namespace mcw::ui {

static constexpr float kHistogramHeight = 96;

static const char* mode_label(TensorInspector::Mode m) {
  switch (m) {
    case TensorInspector::Mode::MeanAbs:
      return "mean |w|";
    case TensorInspector::Mode::MaxAbs:
      return "max |w|";
    case TensorInspector::Mode::ZeroDensity:
      return "zero density";
  }
  return "";
}

void TensorInspector::buildUi() {
  const ImGuiIO& io = ImGui::GetIO();
  ImGui::SetNextWindowPos(ImVec2(0, 0));
  ImGui::SetNextWindowSize(io.DisplaySize);
  ImGui::Begin("inspector", nullptr,
               ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                   ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoBringToFrontOnFocus);
  const TensorHeatmapData& d = data();
  if (d.name.isEmpty()) {
    ImGui::TextWrapped("Select a tensor in the Model panel to inspect its weights.");
  } else if (d.loading) {
    ImGui::Text("%s", d.name.toUtf8().constData());
    ImGui::TextDisabled("computing the heatmap...");
  } else if (!d.error.isEmpty()) {
    ImGui::Text("%s", d.name.toUtf8().constData());
    ImGui::TextWrapped("error: %s", d.error.toUtf8().constData());
  } else if (d.ready()) {
    ImGui::Text("%s", d.name.toUtf8().constData());
    ImGui::TextDisabled("[%lld x %lld] in %d x %d tiles, %s", qlonglong(d.rows), qlonglong(d.cols),
                        d.grid_h, d.grid_w, d.backend.toUtf8().constData());
    int m = int(mode_);
    for (Mode option : {Mode::MeanAbs, Mode::MaxAbs, Mode::ZeroDensity}) {
      if (option != Mode::MeanAbs) ImGui::SameLine();
      ImGui::RadioButton(mode_label(option), &m, int(option));
    }
    if (m != int(mode_)) setMode(Mode(m));
    ImGui::SameLine();
    if (ImGui::SmallButton("fit")) zoom_ = 1, origin_ = {};
    ImGui::SameLine();
    ImGui::TextDisabled("zoom %.0f%%  (wheel: zoom, drag: pan)", zoom_ * 100);
    const float hist_block = kHistogramHeight + ImGui::GetTextLineHeightWithSpacing() * 2 + 8;
    heatmapArea(std::max(64.0f, ImGui::GetContentRegionAvail().y - hist_block));

    std::vector<float> bins(d.histogram);
    ImGui::Text("values in [%.4g, %.4g], %d bins", d.hist_lo, d.hist_hi, int(bins.size()));
    ImGui::PlotHistogram("##histogram", bins.data(), int(bins.size()), 0, nullptr, 0.0f, FLT_MAX,
                         ImVec2(ImGui::GetContentRegionAvail().x, kHistogramHeight));
  }
  ImGui::End();
}

void TensorInspector::heatmapArea(float height) {
  const TensorHeatmapData& d = data();
  const ImVec2 avail(ImGui::GetContentRegionAvail().x, height);
  const float legend_w = 70;
  // Square tiles (the grid's aspect) fitted into the area left of the legend, but no
  // thinner than 1:3, so that a tall or wide matrix still shows its tiles.
  const float aspect = std::clamp(float(d.grid_w) / float(d.grid_h), 1.0f / 3, 3.0f);
  ImVec2 size(avail.x - legend_w, (avail.x - legend_w) / aspect);
  if (size.y > avail.y) size = ImVec2(avail.y * aspect, avail.y);
  size.x = std::max(size.x, 8.0f), size.y = std::max(size.y, 8.0f);
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 p1(p0.x + size.x, p0.y + size.y);
  heatmap_rect_ = QRectF(p0.x, p0.y, size.x, size.y);
  ImGui::InvisibleButton("##heatmap", size);
  const bool hovered = ImGui::IsItemHovered(), active = ImGui::IsItemActive();
  const ImGuiIO& io = ImGui::GetIO();
  auto to_uv = [&](ImVec2 p) {
    return ImVec2(float(origin_.x() + (p.x - p0.x) / size.x / zoom_),
                  float(origin_.y() + (p.y - p0.y) / size.y / zoom_));
  };
  if (hovered && io.MouseWheel != 0) {
    const ImVec2 uv = to_uv(io.MousePos);
    zoomAt(std::pow(1.25, double(io.MouseWheel)), uv.x, uv.y);
  }
  if (active && (io.MouseDelta.x != 0 || io.MouseDelta.y != 0)) {
    origin_ -= QPointF(io.MouseDelta.x / size.x / zoom_, io.MouseDelta.y / size.y / zoom_);
    clampView();
  }
  const float span = float(1.0 / zoom_);
  const ImVec2 uv0(float(origin_.x()), float(origin_.y()));
  ImDrawList* list = ImGui::GetWindowDrawList();
  renderer_->drawTexture(list, p0, p1, uv0, ImVec2(uv0.x + span, uv0.y + span));
  list->AddRect(ImVec2(p0.x - 1, p0.y - 1), ImVec2(p1.x + 1, p1.y + 1),
                IM_COL32(120, 120, 130, 255));

  // The colour scale beside the map.
  const ImVec2 l0(p1.x + 10, p0.y), l1(p1.x + 24, p1.y);
  constexpr int kSteps = 32;
  for (int s = 0; s < kSteps; ++s) {
    const float t0 = float(s) / kSteps, t1 = float(s + 1) / kSteps;
    const uint32_t c = heatmap_color(1.0f - (t0 + t1) / 2);
    list->AddRectFilled(ImVec2(l0.x, l0.y + (l1.y - l0.y) * t0),
                        ImVec2(l1.x, l0.y + (l1.y - l0.y) * t1), ImU32(c));
  }
  char label[32];
  snprintf(label, sizeof label, "%.3g", scale_max_);
  list->AddText(ImVec2(l1.x + 4, l0.y), IM_COL32(220, 220, 220, 255), label);
  list->AddText(ImVec2(l1.x + 4, l1.y - ImGui::GetTextLineHeight()), IM_COL32(220, 220, 220, 255),
                "0");

  if (hovered && !active) {
    const ImVec2 uv = to_uv(io.MousePos);
    const int j = std::clamp(int(uv.x * float(d.grid_w)), 0, d.grid_w - 1);
    const int i = std::clamp(int(uv.y * float(d.grid_h)), 0, d.grid_h - 1);
    const size_t k = size_t(i) * size_t(d.grid_w) + size_t(j);
    ImGui::BeginTooltip();
    ImGui::Text("tile (%d, %d)", i, j);
    ImGui::Text("rows %lld..%lld, cols %lld..%lld", qlonglong(d.rowBegin(i)),
                qlonglong(d.rowBegin(i + 1) - 1), qlonglong(d.colBegin(j)),
                qlonglong(d.colBegin(j + 1) - 1));
    ImGui::Text("%s: %.5g", mode_label(mode_), double(heatmap_value(d, mode_, k)));
    ImGui::TextDisabled("mean |w| %.4g  max |w| %.4g  zeros %.1f%%", double(d.mean_abs[k]),
                        double(d.max_abs[k]), double(d.zero_density[k]) * 100);
    ImGui::EndTooltip();
  }
}

}  // namespace mcw::ui
#endif
