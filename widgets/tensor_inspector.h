// The tensor inspector: the selected tensor's tile heatmap (mean |w|, max |w| or the
// density of exact zeros, i.e. of a pruning mask) as a zoomable, pannable Dear ImGui image
// with a tooltip per tile, and a histogram of its values. ImGui is rendered by Vulkan
// offscreen and painted here (ImGuiVulkanRenderer); mouse and wheel input are forwarded to
// ImGui. Without Vulkan it shows why, in plain text. The data comes from the project
// context (requestTensorHeatmap), computed off the UI thread.
#pragma once
#include <QElapsedTimer>
#include <QImage>
#include <QPointF>
#include <QRectF>
#include <QWidget>
#include <memory>

#include "widgets/inspector_types.h"
#include "widgets/project_context_api.h"

namespace mcw::ui {

class ImGuiVulkanRenderer;

class TensorInspector : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  enum class Mode { MeanAbs, MaxAbs, ZeroDensity };
  static constexpr int kGrid = 256;  // tiles asked for per side

  explicit TensorInspector(IProjectContext& context, QWidget* parent = nullptr);
  ~TensorInspector() override;

  bool vulkanAvailable() const { return renderer_ != nullptr; }
  QString unavailableReason() const { return reason_; }
  const TensorHeatmapData& data() const { return context_.tensorHeatmap(); }
  Mode mode() const { return mode_; }
  void setMode(Mode mode);
  // The view: zoom 1 shows the whole grid; origin is the top-left visible point in texture
  // coordinates (0..1).
  double zoom() const { return zoom_; }
  QPointF viewOrigin() const { return origin_; }
  QImage lastFrame() const { return frame_; }
  // Where the last frame drew the heatmap, in widget pixels (empty before one was drawn).
  QRectF heatmapRect() const { return heatmap_rect_; }
  QSize sizeHint() const override { return {520, 560}; }

  void onSelectionChanged() override;
  void onModelLoaded() override;
  void onTensorHeatmapUpdated() override;

 protected:
  void paintEvent(QPaintEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void leaveEvent(QEvent* event) override;
  void showEvent(QShowEvent* event) override;

 private:
  void request();
  void uploadTexture();
  QImage renderFrame();
  void buildUi();  // tensor_inspector_ui.cpp: one ImGui frame
  void heatmapArea(float height);
  void zoomAt(double factor, double u, double v);
  void clampView();

  IProjectContext& context_;
  std::unique_ptr<ImGuiVulkanRenderer> renderer_;
  QString reason_;
  QString requested_;
  Mode mode_ = Mode::MeanAbs;
  float scale_max_ = 0;  // the value shown as the top of the colour scale
  double zoom_ = 1;
  QPointF origin_;
  QRectF heatmap_rect_;
  QImage frame_;
  QElapsedTimer clock_;
  bool texture_stale_ = true;
};

// Row-major RGBA8 (memory order R, G, B, A) of the grid in `mode`, scaled so that 0 is the
// bottom of the colour map and `*scale_max` (the largest value shown) its top.
std::vector<uint32_t> heatmap_pixels(const TensorHeatmapData& d, TensorInspector::Mode mode,
                                     float* scale_max);
// The colour map (dark blue through teal and green to yellow) at t in [0, 1].
uint32_t heatmap_color(float t);
float heatmap_value(const TensorHeatmapData& d, TensorInspector::Mode mode, size_t index);

}  // namespace mcw::ui
