#include "widgets/tensor_inspector.h"

#include <QMouseEvent>
#include <QPainter>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>

#ifdef MCW_WIDGETS_VULKAN
#include "widgets/imgui_vulkan_renderer.h"
#else
namespace mcw::ui {
class ImGuiVulkanRenderer {  // never created in a build without Vulkan
 public:
  QString lastError() const { return {}; }
};
}  // namespace mcw::ui
#endif

namespace mcw::ui {

// ---- colours -------------------------------------------------------------------------------

uint32_t heatmap_color(float t) {
  // Stops of a perceptually ordered dark-to-bright map.
  static constexpr float stops[][3] = {{0.05f, 0.03f, 0.25f}, {0.20f, 0.20f, 0.55f},
                                       {0.10f, 0.50f, 0.55f}, {0.25f, 0.72f, 0.40f},
                                       {0.75f, 0.85f, 0.20f}, {0.99f, 0.91f, 0.15f}};
  constexpr int n = int(std::size(stops)) - 1;
  if (!(t >= 0)) t = 0;  // also NaN
  t = std::min(t, 1.0f) * float(n);
  const int k = std::min(int(t), n - 1);
  const float f = t - float(k);
  uint32_t out = 0xff000000u;  // alpha in the top byte: memory order R, G, B, A
  for (int c = 0; c < 3; ++c) {
    const float v = stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f;
    out |= uint32_t(std::lround(v * 255.0f)) << (8 * c);
  }
  return out;
}

float heatmap_value(const TensorHeatmapData& d, TensorInspector::Mode mode, size_t index) {
  switch (mode) {
    case TensorInspector::Mode::MeanAbs:
      return d.mean_abs[index];
    case TensorInspector::Mode::MaxAbs:
      return d.max_abs[index];
    case TensorInspector::Mode::ZeroDensity:
      return d.zero_density[index];
  }
  return 0;
}

std::vector<uint32_t> heatmap_pixels(const TensorHeatmapData& d, TensorInspector::Mode mode,
                                     float* scale_max) {
  const size_t n = size_t(d.grid_h) * size_t(d.grid_w);
  float top = mode == TensorInspector::Mode::ZeroDensity ? 1.0f : 0.0f;
  if (mode != TensorInspector::Mode::ZeroDensity)
    for (size_t k = 0; k < n; ++k) top = std::max(top, heatmap_value(d, mode, k));
  *scale_max = top;
  std::vector<uint32_t> px(n);
  for (size_t k = 0; k < n; ++k)
    px[k] = heatmap_color(top > 0 ? heatmap_value(d, mode, k) / top : 0.0f);
  return px;
}

// ---- the widget ------------------------------------------------------------------------------

TensorInspector::TensorInspector(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  setObjectName(QStringLiteral("tensorInspector"));
  setMouseTracking(true);
  setMinimumSize(240, 240);
#ifdef MCW_WIDGETS_VULKAN
  renderer_ = ImGuiVulkanRenderer::create(&reason_);
#else
  reason_ = tr("this build has no Vulkan support");
#endif
  clock_.start();
  context_.addViewer(this);
  onSelectionChanged();
}

TensorInspector::~TensorInspector() { context_.removeViewer(this); }

void TensorInspector::setMode(Mode mode) {
  if (mode == mode_) return;
  mode_ = mode;
  texture_stale_ = true;
  update();
}

void TensorInspector::request() {
  // Hidden (a tab behind another dock): nothing converts or reduces a tensor nobody sees;
  // showEvent asks for the selection then.
  if (!isVisible()) return;
  const QString layer = context_.selection().layer;
  if (layer.isEmpty() || layer == requested_) return;
  // Only tensors of the open model; a run or recipe selection keeps the last tensor.
  bool known = false;
  for (const TensorRow& r : context_.model().tensors) known = known || r.name == layer;
  if (!known) return;
  requested_ = layer;
  context_.requestTensorHeatmap(layer, kGrid, kGrid);
}

void TensorInspector::onSelectionChanged() { request(); }

void TensorInspector::showEvent(QShowEvent* event) {
  QWidget::showEvent(event);
  request();
}

void TensorInspector::onModelLoaded() {
  requested_.clear();
  request();
  update();
}

void TensorInspector::onTensorHeatmapUpdated() {
  zoom_ = 1;
  origin_ = {};
  texture_stale_ = true;
  update();
}

void TensorInspector::uploadTexture() {
  texture_stale_ = false;
#ifdef MCW_WIDGETS_VULKAN
  const TensorHeatmapData& d = data();
  if (!renderer_ || !d.ready()) return;
  renderer_->setTexture(d.grid_w, d.grid_h, heatmap_pixels(d, mode_, &scale_max_));
#endif
}

QImage TensorInspector::renderFrame() {
#ifdef MCW_WIDGETS_VULKAN
  if (texture_stale_) uploadTexture();
  const float dt = float(clock_.restart()) / 1000.0f;
  renderer_->beginFrame(width(), height(), std::clamp(dt, 0.001f, 0.5f));
  buildUi();
  return renderer_->endFrame();
#else
  return {};
#endif
}

void TensorInspector::paintEvent(QPaintEvent*) {
  QPainter p(this);
  if (renderer_) {
    frame_ = renderFrame();
    if (!frame_.isNull()) {
      p.drawImage(0, 0, frame_);
      return;
    }
  }
  p.fillRect(rect(), palette().window());
  p.setPen(palette().text().color());
  const QString why = renderer_ ? renderer_->lastError() : reason_;
  p.drawText(rect().adjusted(12, 12, -12, -12), Qt::AlignCenter | Qt::TextWordWrap,
             tr("Vulkan unavailable: %1").arg(why));
}

#ifdef MCW_WIDGETS_VULKAN
static void set_mouse_pos(ImGuiContext* ctx, QPointF pos) {
  ImGui::SetCurrentContext(ctx);
  ImGui::GetIO().MousePos = ImVec2(float(pos.x()), float(pos.y()));
}

static int imgui_button(Qt::MouseButton b) {
  return b == Qt::LeftButton ? 0 : b == Qt::RightButton ? 1 : b == Qt::MiddleButton ? 2 : -1;
}
#endif

void TensorInspector::mouseMoveEvent(QMouseEvent* event) {
#ifdef MCW_WIDGETS_VULKAN
  if (renderer_) set_mouse_pos(renderer_->context(), event->position());
#endif
  update();
  QWidget::mouseMoveEvent(event);
}

void TensorInspector::mousePressEvent([[maybe_unused]] QMouseEvent* event) {
#ifdef MCW_WIDGETS_VULKAN
  if (renderer_) {
    set_mouse_pos(renderer_->context(), event->position());
    if (const int b = imgui_button(event->button()); b >= 0) ImGui::GetIO().MouseDown[b] = true;
  }
#endif
  repaint();  // now: ImGui must see the press and the release in different frames
}

void TensorInspector::mouseReleaseEvent([[maybe_unused]] QMouseEvent* event) {
#ifdef MCW_WIDGETS_VULKAN
  if (renderer_) {
    set_mouse_pos(renderer_->context(), event->position());
    if (const int b = imgui_button(event->button()); b >= 0) ImGui::GetIO().MouseDown[b] = false;
  }
#endif
  repaint();  // now: ImGui must see the press and the release in different frames
}

void TensorInspector::wheelEvent(QWheelEvent* event) {
#ifdef MCW_WIDGETS_VULKAN
  if (renderer_) {
    set_mouse_pos(renderer_->context(), event->position());
    ImGui::GetIO().MouseWheel += float(event->angleDelta().y()) / 120.0f;
  }
#endif
  event->accept();
  update();
}

void TensorInspector::leaveEvent(QEvent* event) {
#ifdef MCW_WIDGETS_VULKAN
  if (renderer_) set_mouse_pos(renderer_->context(), QPointF(-1e6, -1e6));
#endif
  update();
  QWidget::leaveEvent(event);
}

void TensorInspector::zoomAt(double factor, double u, double v) {
  // Keeps the texture point (u, v) under the same screen point.
  const double z = std::clamp(zoom_ * factor, 1.0, 64.0);
  const double fx = (u - origin_.x()) * zoom_, fy = (v - origin_.y()) * zoom_;
  zoom_ = z;
  origin_ = QPointF(u - fx / z, v - fy / z);
  clampView();
}

void TensorInspector::clampView() {
  const double span = 1.0 / zoom_;
  origin_.setX(std::clamp(origin_.x(), 0.0, 1.0 - span));
  origin_.setY(std::clamp(origin_.y(), 0.0, 1.0 - span));
}

}  // namespace mcw::ui
