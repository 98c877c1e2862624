// ImGuiVulkanRenderer's resources: images, buffers, one-shot command buffers, and the
// texture with the pipeline that draws it from an ImGui draw callback.
#include <cstdint>  // before the generated shader headers, which use uint32_t
#include <cstring>
#include <stdexcept>

#include "shaders/imgui_texture_frag.h"
#include "shaders/imgui_texture_vert.h"
#include "widgets/imgui_vulkan_renderer.h"

namespace mcw::ui {

void vk_check(VkResult r, const char* call);  // imgui_vulkan_renderer.cpp

uint32_t ImGuiVulkanRenderer::memoryType(uint32_t bits, VkMemoryPropertyFlags flags) const {
  VkPhysicalDeviceMemoryProperties mem;
  vkGetPhysicalDeviceMemoryProperties(physical_, &mem);
  for (uint32_t i = 0; i < mem.memoryTypeCount; ++i)
    if ((bits & (1u << i)) && (mem.memoryTypes[i].propertyFlags & flags) == flags) return i;
  throw std::runtime_error("no suitable Vulkan memory type");
}

ImGuiVulkanRenderer::Image ImGuiVulkanRenderer::makeImage(int width, int height,
                                                          VkImageUsageFlags usage) {
  Image img;
  VkImageCreateInfo ici{};
  ici.sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO;
  ici.imageType = VK_IMAGE_TYPE_2D;
  ici.format = VK_FORMAT_R8G8B8A8_UNORM;
  ici.extent = {uint32_t(width), uint32_t(height), 1};
  ici.mipLevels = 1;
  ici.arrayLayers = 1;
  ici.samples = VK_SAMPLE_COUNT_1_BIT;
  ici.tiling = VK_IMAGE_TILING_OPTIMAL;
  ici.usage = usage;
  ici.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
  vk_check(vkCreateImage(device_, &ici, nullptr, &img.image), "vkCreateImage");
  VkMemoryRequirements req;
  vkGetImageMemoryRequirements(device_, img.image, &req);
  VkMemoryAllocateInfo mai{};
  mai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  mai.allocationSize = req.size;
  mai.memoryTypeIndex = memoryType(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  vk_check(vkAllocateMemory(device_, &mai, nullptr, &img.memory), "vkAllocateMemory");
  vk_check(vkBindImageMemory(device_, img.image, img.memory, 0), "vkBindImageMemory");
  VkImageViewCreateInfo vci{};
  vci.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO;
  vci.image = img.image;
  vci.viewType = VK_IMAGE_VIEW_TYPE_2D;
  vci.format = ici.format;
  vci.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
  vk_check(vkCreateImageView(device_, &vci, nullptr, &img.view), "vkCreateImageView");
  return img;
}

void ImGuiVulkanRenderer::destroyImage(Image& img) {
  if (img.view) vkDestroyImageView(device_, img.view, nullptr);
  if (img.image) vkDestroyImage(device_, img.image, nullptr);
  if (img.memory) vkFreeMemory(device_, img.memory, nullptr);
  img = {};
}

ImGuiVulkanRenderer::Buffer ImGuiVulkanRenderer::makeBuffer(size_t bytes,
                                                            VkBufferUsageFlags usage) {
  Buffer b;
  VkBufferCreateInfo bci{};
  bci.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  bci.size = bytes;
  bci.usage = usage;
  vk_check(vkCreateBuffer(device_, &bci, nullptr, &b.buffer), "vkCreateBuffer");
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(device_, b.buffer, &req);
  VkMemoryAllocateInfo mai{};
  mai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  mai.allocationSize = req.size;
  mai.memoryTypeIndex = memoryType(req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                                           VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  vk_check(vkAllocateMemory(device_, &mai, nullptr, &b.memory), "vkAllocateMemory");
  vk_check(vkBindBufferMemory(device_, b.buffer, b.memory, 0), "vkBindBufferMemory");
  vk_check(vkMapMemory(device_, b.memory, 0, VK_WHOLE_SIZE, 0, &b.mapped), "vkMapMemory");
  b.size = bytes;
  return b;
}

void ImGuiVulkanRenderer::destroyBuffer(Buffer& b) {
  if (b.mapped) vkUnmapMemory(device_, b.memory);
  if (b.buffer) vkDestroyBuffer(device_, b.buffer, nullptr);
  if (b.memory) vkFreeMemory(device_, b.memory, nullptr);
  b = {};
}

VkCommandBuffer ImGuiVulkanRenderer::beginCommands() {
  VkCommandBufferAllocateInfo cbai{};
  cbai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  cbai.commandPool = pool_;
  cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cbai.commandBufferCount = 1;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  vk_check(vkAllocateCommandBuffers(device_, &cbai, &cmd), "vkAllocateCommandBuffers");
  VkCommandBufferBeginInfo begin{};
  begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  vk_check(vkBeginCommandBuffer(cmd, &begin), "vkBeginCommandBuffer");
  return cmd;
}

void ImGuiVulkanRenderer::submitAndWait(VkCommandBuffer cmd) {
  VkResult r = vkEndCommandBuffer(cmd);
  VkSubmitInfo si{};
  si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cmd;
  if (r == VK_SUCCESS) r = vkResetFences(device_, 1, &fence_);
  if (r == VK_SUCCESS) r = vkQueueSubmit(queue_, 1, &si, fence_);
  if (r == VK_SUCCESS) r = vkWaitForFences(device_, 1, &fence_, VK_TRUE, UINT64_MAX);
  vkFreeCommandBuffers(device_, pool_, 1, &cmd);
  vk_check(r, "submitting Vulkan commands");
}

void ImGuiVulkanRenderer::createTexturePipeline() {
  VkSamplerCreateInfo sci{};
  sci.sType = VK_STRUCTURE_TYPE_SAMPLER_CREATE_INFO;
  sci.magFilter = VK_FILTER_NEAREST;
  sci.minFilter = VK_FILTER_NEAREST;
  sci.mipmapMode = VK_SAMPLER_MIPMAP_MODE_NEAREST;
  sci.addressModeU = sci.addressModeV = sci.addressModeW = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE;
  sci.maxLod = 0;
  vk_check(vkCreateSampler(device_, &sci, nullptr, &sampler_), "vkCreateSampler");
  VkDescriptorSetLayoutBinding binding{};
  binding.descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER;
  binding.descriptorCount = 1;
  binding.stageFlags = VK_SHADER_STAGE_FRAGMENT_BIT;
  VkDescriptorSetLayoutCreateInfo dslci{};
  dslci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
  dslci.bindingCount = 1;
  dslci.pBindings = &binding;
  vk_check(vkCreateDescriptorSetLayout(device_, &dslci, nullptr, &texture_set_layout_),
           "vkCreateDescriptorSetLayout");
  VkPushConstantRange push{VK_SHADER_STAGE_VERTEX_BIT, 0, 8 * sizeof(float)};
  VkPipelineLayoutCreateInfo plci{};
  plci.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
  plci.setLayoutCount = 1;
  plci.pSetLayouts = &texture_set_layout_;
  plci.pushConstantRangeCount = 1;
  plci.pPushConstantRanges = &push;
  vk_check(vkCreatePipelineLayout(device_, &plci, nullptr, &quad_layout_),
           "vkCreatePipelineLayout");

  VkShaderModule modules[2] = {};
  const std::pair<const uint32_t*, size_t> code[2] = {
      {imgui_texture_vert, sizeof(imgui_texture_vert)},
      {imgui_texture_frag, sizeof(imgui_texture_frag)}};
  for (int i = 0; i < 2; ++i) {
    VkShaderModuleCreateInfo smci{};
    smci.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
    smci.codeSize = code[i].second;
    smci.pCode = code[i].first;
    vk_check(vkCreateShaderModule(device_, &smci, nullptr, &modules[i]), "vkCreateShaderModule");
  }
  VkPipelineShaderStageCreateInfo stages[2] = {};
  for (int i = 0; i < 2; ++i) {
    stages[i].sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    stages[i].stage = i == 0 ? VK_SHADER_STAGE_VERTEX_BIT : VK_SHADER_STAGE_FRAGMENT_BIT;
    stages[i].module = modules[i];
    stages[i].pName = "main";
  }
  VkPipelineVertexInputStateCreateInfo vertex{};
  vertex.sType = VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO;
  VkPipelineInputAssemblyStateCreateInfo assembly{};
  assembly.sType = VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO;
  assembly.topology = VK_PRIMITIVE_TOPOLOGY_TRIANGLE_STRIP;
  VkPipelineViewportStateCreateInfo viewport{};
  viewport.sType = VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO;
  viewport.viewportCount = 1;
  viewport.scissorCount = 1;
  VkPipelineRasterizationStateCreateInfo raster{};
  raster.sType = VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO;
  raster.polygonMode = VK_POLYGON_MODE_FILL;
  raster.cullMode = VK_CULL_MODE_NONE;
  raster.lineWidth = 1.0f;
  VkPipelineMultisampleStateCreateInfo multisample{};
  multisample.sType = VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO;
  multisample.rasterizationSamples = VK_SAMPLE_COUNT_1_BIT;
  VkPipelineColorBlendAttachmentState blend{};
  blend.colorWriteMask = VK_COLOR_COMPONENT_R_BIT | VK_COLOR_COMPONENT_G_BIT |
                         VK_COLOR_COMPONENT_B_BIT | VK_COLOR_COMPONENT_A_BIT;
  VkPipelineColorBlendStateCreateInfo blending{};
  blending.sType = VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO;
  blending.attachmentCount = 1;
  blending.pAttachments = &blend;
  const VkDynamicState dynamic_states[] = {VK_DYNAMIC_STATE_VIEWPORT, VK_DYNAMIC_STATE_SCISSOR};
  VkPipelineDynamicStateCreateInfo dynamic{};
  dynamic.sType = VK_STRUCTURE_TYPE_PIPELINE_DYNAMIC_STATE_CREATE_INFO;
  dynamic.dynamicStateCount = 2;
  dynamic.pDynamicStates = dynamic_states;
  VkGraphicsPipelineCreateInfo gpci{};
  gpci.sType = VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO;
  gpci.stageCount = 2;
  gpci.pStages = stages;
  gpci.pVertexInputState = &vertex;
  gpci.pInputAssemblyState = &assembly;
  gpci.pViewportState = &viewport;
  gpci.pRasterizationState = &raster;
  gpci.pMultisampleState = &multisample;
  gpci.pColorBlendState = &blending;
  gpci.pDynamicState = &dynamic;
  gpci.layout = quad_layout_;
  gpci.renderPass = render_pass_;
  const VkResult r =
      vkCreateGraphicsPipelines(device_, VK_NULL_HANDLE, 1, &gpci, nullptr, &quad_pipeline_);
  for (VkShaderModule m : modules) vkDestroyShaderModule(device_, m, nullptr);
  vk_check(r, "vkCreateGraphicsPipelines");
}

void ImGuiVulkanRenderer::setTexture(int width, int height, const std::vector<uint32_t>& rgba) {
  if (width <= 0 || height <= 0 || rgba.size() != size_t(width) * size_t(height)) return;
  vkDeviceWaitIdle(device_);
  destroyImage(texture_);
  if (texture_set_) vkFreeDescriptorSets(device_, descriptors_, 1, &texture_set_);
  texture_set_ = VK_NULL_HANDLE;
  Buffer staging{};
  try {
    texture_ =
        makeImage(width, height, VK_IMAGE_USAGE_SAMPLED_BIT | VK_IMAGE_USAGE_TRANSFER_DST_BIT);
    staging = makeBuffer(rgba.size() * 4, VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
    std::memcpy(staging.mapped, rgba.data(), rgba.size() * 4);
    VkCommandBuffer cmd = beginCommands();
    VkImageMemoryBarrier barrier{};
    barrier.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER;
    barrier.srcQueueFamilyIndex = barrier.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
    barrier.image = texture_.image;
    barrier.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
    barrier.oldLayout = VK_IMAGE_LAYOUT_UNDEFINED;
    barrier.newLayout = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL;
    barrier.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_HOST_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0,
                         nullptr, 0, nullptr, 1, &barrier);
    VkBufferImageCopy copy{};
    copy.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1};
    copy.imageExtent = {uint32_t(width), uint32_t(height), 1};
    vkCmdCopyBufferToImage(cmd, staging.buffer, texture_.image,
                           VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 1, &copy);
    barrier.oldLayout = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL;
    barrier.newLayout = VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL;
    barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT,
                         0, 0, nullptr, 0, nullptr, 1, &barrier);
    submitAndWait(cmd);
    VkDescriptorSetAllocateInfo dsai{};
    dsai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
    dsai.descriptorPool = descriptors_;
    dsai.descriptorSetCount = 1;
    dsai.pSetLayouts = &texture_set_layout_;
    vk_check(vkAllocateDescriptorSets(device_, &dsai, &texture_set_), "vkAllocateDescriptorSets");
    VkDescriptorImageInfo info{sampler_, texture_.view, VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL};
    VkWriteDescriptorSet write{};
    write.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
    write.dstSet = texture_set_;
    write.descriptorCount = 1;
    write.descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER;
    write.pImageInfo = &info;
    vkUpdateDescriptorSets(device_, 1, &write, 0, nullptr);
  } catch (const std::exception& e) {
    last_error_ = QString::fromStdString(e.what());
    destroyImage(texture_);
  }
  destroyBuffer(staging);
}

void ImGuiVulkanRenderer::drawTexture(ImDrawList* list, ImVec2 p0, ImVec2 p1, ImVec2 uv0,
                                      ImVec2 uv1) {
  if (!texture_set_) return;
  const ImVec2 size = ImGui::GetIO().DisplaySize;
  auto quad = std::make_unique<Quad>(Quad{
      this,
      {p0.x / size.x * 2 - 1, p0.y / size.y * 2 - 1, p1.x / size.x * 2 - 1, p1.y / size.y * 2 - 1},
      {uv0.x, uv0.y, uv1.x, uv1.y}});
  list->AddCallback(&ImGuiVulkanRenderer::drawQuad, quad.get());
  list->AddCallback(ImDrawCallback_ResetRenderState, nullptr);  // ImGui's pipeline and font
  quads_.push_back(std::move(quad));
}

void ImGuiVulkanRenderer::drawQuad(const ImDrawList*, const ImDrawCmd* cmd) {
  const auto* q = static_cast<const Quad*>(cmd->UserCallbackData);
  ImGuiVulkanRenderer* self = q->self;
  VkCommandBuffer cb = self->recording_;
  if (!cb) return;
  // ImGui's clip rectangle, in framebuffer pixels (the display starts at 0, 0).
  const float x0 = std::max(0.0f, cmd->ClipRect.x), y0 = std::max(0.0f, cmd->ClipRect.y);
  const float x1 = std::min(float(self->width_), cmd->ClipRect.z);
  const float y1 = std::min(float(self->height_), cmd->ClipRect.w);
  if (x1 <= x0 || y1 <= y0) return;
  const VkRect2D scissor{{int32_t(x0), int32_t(y0)}, {uint32_t(x1 - x0), uint32_t(y1 - y0)}};
  const VkViewport viewport{0, 0, float(self->width_), float(self->height_), 0, 1};
  vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_GRAPHICS, self->quad_pipeline_);
  vkCmdSetViewport(cb, 0, 1, &viewport);
  vkCmdSetScissor(cb, 0, 1, &scissor);
  vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_GRAPHICS, self->quad_layout_, 0, 1,
                          &self->texture_set_, 0, nullptr);
  float push[8];
  std::memcpy(push, q->rect, sizeof(q->rect));
  std::memcpy(push + 4, q->uv, sizeof(q->uv));
  vkCmdPushConstants(cb, self->quad_layout_, VK_SHADER_STAGE_VERTEX_BIT, 0, sizeof(push), push);
  vkCmdDraw(cb, 4, 1, 0, 0);
}

}  // namespace mcw::ui
