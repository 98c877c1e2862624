#include "widgets/imgui_vulkan_renderer.h"

#include <backends/imgui_impl_vulkan.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace mcw::ui {

namespace {

std::string result_text(VkResult r) {
  switch (r) {
    case VK_ERROR_INCOMPATIBLE_DRIVER:
      return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_INITIALIZATION_FAILED:
      return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_OUT_OF_HOST_MEMORY:
      return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
      return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_DEVICE_LOST:
      return "VK_ERROR_DEVICE_LOST";
    default:
      return "VkResult " + std::to_string(int(r));
  }
}

}  // namespace

// Shared with imgui_vulkan_texture.cpp.
void vk_check(VkResult r, const char* call) {
  if (r != VK_SUCCESS) throw std::runtime_error(std::string(call) + " failed: " + result_text(r));
}

std::unique_ptr<ImGuiVulkanRenderer> ImGuiVulkanRenderer::create(QString* reason) {
  std::unique_ptr<ImGuiVulkanRenderer> r(new ImGuiVulkanRenderer);
  try {
    r->init();
  } catch (const std::exception& e) {
    if (reason) *reason = QString::fromStdString(e.what());
    return nullptr;
  }
  return r;
}

void ImGuiVulkanRenderer::init() {
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "mcw-studio";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo ici{};
  ici.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  ici.pApplicationInfo = &app;
  vk_check(vkCreateInstance(&ici, nullptr, &instance_), "vkCreateInstance");

  // A GPU when there is one, else any device with a graphics queue (lavapipe).
  uint32_t n = 0;
  vk_check(vkEnumeratePhysicalDevices(instance_, &n, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devices(n);
  vk_check(vkEnumeratePhysicalDevices(instance_, &n, devices.data()), "vkEnumeratePhysicalDevices");
  int best_rank = 1 << 20;
  for (VkPhysicalDevice d : devices) {
    uint32_t nf = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(d, &nf, nullptr);
    std::vector<VkQueueFamilyProperties> families(nf);
    vkGetPhysicalDeviceQueueFamilyProperties(d, &nf, families.data());
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(d, &p);
    const int rank = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU     ? 0
                     : p.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ? 1
                                                                              : 2;
    for (uint32_t f = 0; f < nf; ++f)
      if ((families[f].queueFlags & VK_QUEUE_GRAPHICS_BIT) && rank < best_rank) {
        physical_ = d, family_ = f, best_rank = rank;
        device_name_ = QString::fromUtf8(p.deviceName);
        break;
      }
  }
  if (!physical_) throw std::runtime_error("no Vulkan device with a graphics queue");

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qci{};
  qci.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
  qci.queueFamilyIndex = family_;
  qci.queueCount = 1;
  qci.pQueuePriorities = &priority;
  VkDeviceCreateInfo dci{};
  dci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  vk_check(vkCreateDevice(physical_, &dci, nullptr, &device_), "vkCreateDevice");
  vkGetDeviceQueue(device_, family_, 0, &queue_);
  VkCommandPoolCreateInfo pci{};
  pci.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pci.queueFamilyIndex = family_;
  vk_check(vkCreateCommandPool(device_, &pci, nullptr, &pool_), "vkCreateCommandPool");
  VkFenceCreateInfo fci{};
  fci.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  vk_check(vkCreateFence(device_, &fci, nullptr, &fence_), "vkCreateFence");
  VkDescriptorPoolSize sizes{VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 8};
  VkDescriptorPoolCreateInfo dpci{};
  dpci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
  dpci.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
  dpci.maxSets = 8;
  dpci.poolSizeCount = 1;
  dpci.pPoolSizes = &sizes;
  vk_check(vkCreateDescriptorPool(device_, &dpci, nullptr, &descriptors_),
           "vkCreateDescriptorPool");

  // One colour attachment, cleared, left ready to be copied out.
  VkAttachmentDescription color{};
  color.format = VK_FORMAT_R8G8B8A8_UNORM;
  color.samples = VK_SAMPLE_COUNT_1_BIT;
  color.loadOp = VK_ATTACHMENT_LOAD_OP_CLEAR;
  color.storeOp = VK_ATTACHMENT_STORE_OP_STORE;
  color.stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE;
  color.stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE;
  color.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
  color.finalLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL;
  VkAttachmentReference ref{0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
  VkSubpassDescription subpass{};
  subpass.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS;
  subpass.colorAttachmentCount = 1;
  subpass.pColorAttachments = &ref;
  VkSubpassDependency out{};
  out.srcSubpass = 0;
  out.dstSubpass = VK_SUBPASS_EXTERNAL;
  out.srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
  out.dstStageMask = VK_PIPELINE_STAGE_TRANSFER_BIT;
  out.srcAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT;
  out.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
  VkRenderPassCreateInfo rpci{};
  rpci.sType = VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO;
  rpci.attachmentCount = 1;
  rpci.pAttachments = &color;
  rpci.subpassCount = 1;
  rpci.pSubpasses = &subpass;
  rpci.dependencyCount = 1;
  rpci.pDependencies = &out;
  vk_check(vkCreateRenderPass(device_, &rpci, nullptr, &render_pass_), "vkCreateRenderPass");

  IMGUI_CHECKVERSION();
  ImGuiContext* previous = ImGui::GetCurrentContext();
  imgui_ = ImGui::CreateContext();
  ImGui::SetCurrentContext(imgui_);
  ImGui::GetIO().IniFilename = nullptr;  // the studio keeps its own layout
  ImGui::StyleColorsDark();
  ImGui_ImplVulkan_InitInfo info{};
  info.Instance = instance_;
  info.PhysicalDevice = physical_;
  info.Device = device_;
  info.QueueFamily = family_;
  info.Queue = queue_;
  info.DescriptorPool = descriptors_;
  info.MinImageCount = 2;
  info.ImageCount = 2;
  info.MSAASamples = VK_SAMPLE_COUNT_1_BIT;
  backend_ready_ = ImGui_ImplVulkan_Init(&info, render_pass_);
  if (!backend_ready_) throw std::runtime_error("ImGui_ImplVulkan_Init failed");
  VkCommandBuffer cmd = beginCommands();
  ImGui_ImplVulkan_CreateFontsTexture(cmd);
  submitAndWait(cmd);
  ImGui_ImplVulkan_DestroyFontUploadObjects();
  createTexturePipeline();
  ImGui::SetCurrentContext(previous);
}

ImGuiVulkanRenderer::~ImGuiVulkanRenderer() {
  if (device_) vkDeviceWaitIdle(device_);
  if (imgui_) {
    ImGuiContext* previous = ImGui::GetCurrentContext();
    ImGui::SetCurrentContext(imgui_);
    if (backend_ready_) ImGui_ImplVulkan_Shutdown();
    ImGui::DestroyContext(imgui_);
    ImGui::SetCurrentContext(previous == imgui_ ? nullptr : previous);
  }
  if (device_) {
    destroyTarget();
    destroyImage(texture_);
    if (quad_pipeline_) vkDestroyPipeline(device_, quad_pipeline_, nullptr);
    if (quad_layout_) vkDestroyPipelineLayout(device_, quad_layout_, nullptr);
    if (texture_set_layout_) vkDestroyDescriptorSetLayout(device_, texture_set_layout_, nullptr);
    if (sampler_) vkDestroySampler(device_, sampler_, nullptr);
    if (render_pass_) vkDestroyRenderPass(device_, render_pass_, nullptr);
    if (descriptors_) vkDestroyDescriptorPool(device_, descriptors_, nullptr);
    if (fence_) vkDestroyFence(device_, fence_, nullptr);
    if (pool_) vkDestroyCommandPool(device_, pool_, nullptr);
    vkDestroyDevice(device_, nullptr);
  }
  if (instance_) vkDestroyInstance(instance_, nullptr);
}

void ImGuiVulkanRenderer::createTarget(int width, int height) {
  destroyTarget();
  target_ = makeImage(width, height,
                      VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT);
  VkFramebufferCreateInfo fci{};
  fci.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO;
  fci.renderPass = render_pass_;
  fci.attachmentCount = 1;
  fci.pAttachments = &target_.view;
  fci.width = uint32_t(width);
  fci.height = uint32_t(height);
  fci.layers = 1;
  vk_check(vkCreateFramebuffer(device_, &fci, nullptr, &framebuffer_), "vkCreateFramebuffer");
  readback_ = makeBuffer(size_t(width) * size_t(height) * 4, VK_BUFFER_USAGE_TRANSFER_DST_BIT);
  width_ = width, height_ = height;
}

void ImGuiVulkanRenderer::destroyTarget() {
  if (framebuffer_) vkDestroyFramebuffer(device_, framebuffer_, nullptr);
  framebuffer_ = VK_NULL_HANDLE;
  destroyImage(target_);
  destroyBuffer(readback_);
  width_ = height_ = 0;
}

void ImGuiVulkanRenderer::beginFrame(int width, int height, float dt_seconds) {
  ImGui::SetCurrentContext(imgui_);
  ImGuiIO& io = ImGui::GetIO();
  io.DisplaySize = ImVec2(float(std::max(1, width)), float(std::max(1, height)));
  io.DeltaTime = dt_seconds > 0 ? dt_seconds : 1.0f / 60.0f;
  quads_.clear();
  ImGui_ImplVulkan_NewFrame();
  ImGui::NewFrame();
}

QImage ImGuiVulkanRenderer::endFrame() {
  ImGui::SetCurrentContext(imgui_);
  ImGui::Render();
  ImDrawData* draw = ImGui::GetDrawData();
  const int w = int(draw->DisplaySize.x), h = int(draw->DisplaySize.y);
  try {
    if (w != width_ || h != height_) createTarget(w, h);
    VkCommandBuffer cmd = beginCommands();
    VkClearValue clear{};
    clear.color = {{0.08f, 0.08f, 0.09f, 1.0f}};
    VkRenderPassBeginInfo rpbi{};
    rpbi.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO;
    rpbi.renderPass = render_pass_;
    rpbi.framebuffer = framebuffer_;
    rpbi.renderArea.extent = {uint32_t(w), uint32_t(h)};
    rpbi.clearValueCount = 1;
    rpbi.pClearValues = &clear;
    vkCmdBeginRenderPass(cmd, &rpbi, VK_SUBPASS_CONTENTS_INLINE);
    recording_ = cmd;
    ImGui_ImplVulkan_RenderDrawData(draw, cmd);
    recording_ = VK_NULL_HANDLE;
    vkCmdEndRenderPass(cmd);
    VkBufferImageCopy copy{};
    copy.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1};
    copy.imageExtent = {uint32_t(w), uint32_t(h), 1};
    vkCmdCopyImageToBuffer(cmd, target_.image, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
                           readback_.buffer, 1, &copy);
    VkMemoryBarrier host{};
    host.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    host.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                         &host, 0, nullptr, 0, nullptr);
    submitAndWait(cmd);
  } catch (const std::exception& e) {
    recording_ = VK_NULL_HANDLE;
    last_error_ = QString::fromStdString(e.what());
    return {};
  }
  QImage image(w, h, QImage::Format_RGBA8888);
  for (int y = 0; y < h; ++y)
    std::memcpy(image.scanLine(y),
                static_cast<const uint8_t*>(readback_.mapped) + size_t(y) * w * 4, size_t(w) * 4);
  return image;
}

}  // namespace mcw::ui
