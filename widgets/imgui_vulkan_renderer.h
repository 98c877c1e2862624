// Dear ImGui 1.86 rendered by its Vulkan backend into an offscreen image that is read back
// into a QImage (DESIGN §9 route (a)): works under the offscreen Qt platform and in
// QWidget::grab(). Owns its own Vulkan instance and device (widgets never use the engine's)
// and one RGBA texture that the UI draws with drawTexture(); the 1.86 backend binds only
// its font texture, so the texture is drawn by a draw callback with a small pipeline of
// its own (shaders/imgui_texture.vert/.frag).
#pragma once
#include <imgui.h>
#include <vulkan/vulkan.h>

#include <QImage>
#include <QString>
#include <cstdint>
#include <memory>
#include <vector>

namespace mcw::ui {

class ImGuiVulkanRenderer {
 public:
  // Null when Vulkan (or a device that can render) is unavailable; `reason` then holds
  // one line.
  static std::unique_ptr<ImGuiVulkanRenderer> create(QString* reason);
  ~ImGuiVulkanRenderer();
  ImGuiVulkanRenderer(const ImGuiVulkanRenderer&) = delete;
  ImGuiVulkanRenderer& operator=(const ImGuiVulkanRenderer&) = delete;

  ImGuiContext* context() const { return imgui_; }
  QString deviceName() const { return device_name_; }

  // Starts a frame of width x height pixels (makes this renderer's ImGui context current
  // and calls ImGui::NewFrame()); build the UI, then call endFrame().
  void beginFrame(int width, int height, float dt_seconds);
  // Renders, waits, and returns the picture (a null QImage after a Vulkan error, which
  // lastError() then describes).
  QImage endFrame();
  QString lastError() const { return last_error_; }

  // Replaces the texture: width x height pixels, RGBA8 in memory order.
  void setTexture(int width, int height, const std::vector<uint32_t>& rgba);
  bool hasTexture() const { return texture_.image != VK_NULL_HANDLE; }
  // Draws the texture's [uv0, uv1] part into the screen rectangle [p0, p1] of `list`,
  // nearest-neighbour (tiles stay crisp when zoomed), clipped by the list's clip rect.
  void drawTexture(ImDrawList* list, ImVec2 p0, ImVec2 p1, ImVec2 uv0, ImVec2 uv1);

 private:
  ImGuiVulkanRenderer() = default;
  struct Image {
    VkImage image = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
    VkImageView view = VK_NULL_HANDLE;
  };
  struct Buffer {
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
    void* mapped = nullptr;
    size_t size = 0;
  };
  struct Quad {
    ImGuiVulkanRenderer* self;
    float rect[4], uv[4];
  };
  void init();  // throws std::runtime_error
  void createTarget(int width, int height);
  void destroyTarget();
  void createTexturePipeline();
  Image makeImage(int width, int height, VkImageUsageFlags usage);
  void destroyImage(Image& image);
  Buffer makeBuffer(size_t bytes, VkBufferUsageFlags usage);
  void destroyBuffer(Buffer& buffer);
  uint32_t memoryType(uint32_t bits, VkMemoryPropertyFlags flags) const;
  VkCommandBuffer beginCommands();
  void submitAndWait(VkCommandBuffer cmd);
  static void drawQuad(const ImDrawList* list, const ImDrawCmd* cmd);

  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t family_ = 0;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkDescriptorPool descriptors_ = VK_NULL_HANDLE;
  VkRenderPass render_pass_ = VK_NULL_HANDLE;
  QString device_name_;
  ImGuiContext* imgui_ = nullptr;
  bool backend_ready_ = false;
  // The offscreen target and its read-back buffer.
  int width_ = 0, height_ = 0;
  Image target_;
  VkFramebuffer framebuffer_ = VK_NULL_HANDLE;
  Buffer readback_;
  // The texture and the pipeline that draws it.
  Image texture_;
  VkSampler sampler_ = VK_NULL_HANDLE;
  VkDescriptorSetLayout texture_set_layout_ = VK_NULL_HANDLE;
  VkDescriptorSet texture_set_ = VK_NULL_HANDLE;
  VkPipelineLayout quad_layout_ = VK_NULL_HANDLE;
  VkPipeline quad_pipeline_ = VK_NULL_HANDLE;
  std::vector<std::unique_ptr<Quad>> quads_;  // this frame's callback data
  VkCommandBuffer recording_ = VK_NULL_HANDLE;
  QString last_error_;
};

}  // namespace mcw::ui
