#include "engine/kernels/vulkan/vulkan_compute.h"

#include <algorithm>
#include <cstdlib>
#include <utility>
#include <vector>

#include "engine/core/error.h"

namespace mcw::vulkan {

std::string vk_result_name(VkResult r) {
  switch (r) {
    case VK_SUCCESS:
      return "VK_SUCCESS";
    case VK_ERROR_OUT_OF_HOST_MEMORY:
      return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
      return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED:
      return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST:
      return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_LAYER_NOT_PRESENT:
      return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
      return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
      return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_FEATURE_NOT_PRESENT:
      return "VK_ERROR_FEATURE_NOT_PRESENT";
    default:
      return "VkResult " + std::to_string(int(r));
  }
}

[[noreturn]] static void fail(const std::string& what) { throw Error("Vulkan", what); }

static void check(VkResult r, const char* call) {
  if (r != VK_SUCCESS) fail(std::string(call) + " failed: " + vk_result_name(r));
}

// ---- buffers and pipelines ----------------------------------------------------------------

VulkanBuffer& VulkanBuffer::operator=(VulkanBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    device_ = std::exchange(o.device_, VK_NULL_HANDLE);
    buffer_ = std::exchange(o.buffer_, VK_NULL_HANDLE);
    memory_ = std::exchange(o.memory_, VK_NULL_HANDLE);
    mapped_ = std::exchange(o.mapped_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void VulkanBuffer::reset() {
  if (!device_) return;
  if (mapped_) vkUnmapMemory(device_, memory_);
  if (buffer_) vkDestroyBuffer(device_, buffer_, nullptr);
  if (memory_) vkFreeMemory(device_, memory_, nullptr);
  device_ = VK_NULL_HANDLE, buffer_ = VK_NULL_HANDLE, memory_ = VK_NULL_HANDLE;
  mapped_ = nullptr, size_ = 0;
}

ComputePipeline& ComputePipeline::operator=(ComputePipeline&& o) noexcept {
  if (this != &o) {
    reset();
    device_ = std::exchange(o.device_, VK_NULL_HANDLE);
    module_ = std::exchange(o.module_, VK_NULL_HANDLE);
    set_layout_ = std::exchange(o.set_layout_, VK_NULL_HANDLE);
    layout_ = std::exchange(o.layout_, VK_NULL_HANDLE);
    pipeline_ = std::exchange(o.pipeline_, VK_NULL_HANDLE);
    buffers_ = std::exchange(o.buffers_, 0);
    push_bytes_ = std::exchange(o.push_bytes_, 0);
  }
  return *this;
}

void ComputePipeline::reset() {
  if (!device_) return;
  if (pipeline_) vkDestroyPipeline(device_, pipeline_, nullptr);
  if (layout_) vkDestroyPipelineLayout(device_, layout_, nullptr);
  if (set_layout_) vkDestroyDescriptorSetLayout(device_, set_layout_, nullptr);
  if (module_) vkDestroyShaderModule(device_, module_, nullptr);
  device_ = VK_NULL_HANDLE;
}

// ---- the context ----------------------------------------------------------------------------

VulkanCompute::VulkanCompute() {
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "mcw";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo ici{};
  ici.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  ici.pApplicationInfo = &app;
  check(vkCreateInstance(&ici, nullptr, &instance_), "vkCreateInstance");
  try {
    pick_device();
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qci{};
    qci.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
    qci.queueFamilyIndex = queue_family_;
    qci.queueCount = 1;
    qci.pQueuePriorities = &priority;
    VkDeviceCreateInfo dci{};
    dci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
    dci.queueCreateInfoCount = 1;
    dci.pQueueCreateInfos = &qci;
    check(vkCreateDevice(physical_, &dci, nullptr, &device_), "vkCreateDevice");
    vkGetDeviceQueue(device_, queue_family_, 0, &queue_);
    VkCommandPoolCreateInfo pci{};
    pci.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pci.queueFamilyIndex = queue_family_;
    check(vkCreateCommandPool(device_, &pci, nullptr, &pool_), "vkCreateCommandPool");
    VkFenceCreateInfo fci{};
    fci.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    check(vkCreateFence(device_, &fci, nullptr, &fence_), "vkCreateFence");
  } catch (...) {
    release();
    throw;
  }
}

VulkanCompute::~VulkanCompute() { release(); }

void VulkanCompute::release() {
  pipelines_.clear();
  if (device_) {
    vkDeviceWaitIdle(device_);
    if (fence_) vkDestroyFence(device_, fence_, nullptr);
    if (pool_) vkDestroyCommandPool(device_, pool_, nullptr);
    vkDestroyDevice(device_, nullptr);
    device_ = VK_NULL_HANDLE;
  }
  if (instance_) vkDestroyInstance(instance_, nullptr);
  instance_ = VK_NULL_HANDLE;
}

static int device_rank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return 3;
    default:
      return 4;
  }
}

static bool compute_family(VkPhysicalDevice d, uint32_t* family) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(d, &n, nullptr);
  std::vector<VkQueueFamilyProperties> props(n);
  vkGetPhysicalDeviceQueueFamilyProperties(d, &n, props.data());
  for (uint32_t i = 0; i < n; ++i)
    if (props[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
      *family = i;
      return true;
    }
  return false;
}

void VulkanCompute::pick_device() {
  uint32_t n = 0;
  check(vkEnumeratePhysicalDevices(instance_, &n, nullptr), "vkEnumeratePhysicalDevices");
  if (n == 0) fail("no physical device");
  std::vector<VkPhysicalDevice> devices(n);
  check(vkEnumeratePhysicalDevices(instance_, &n, devices.data()), "vkEnumeratePhysicalDevices");
  devices.resize(n);

  int best = -1, best_rank = 1 << 20;
  uint32_t best_family = 0;
  if (const char* env = std::getenv("MCW_VULKAN_DEVICE"); env && *env) {
    char* end = nullptr;
    const long index = std::strtol(env, &end, 10);
    if (*end || index < 0 || index >= long(n))
      fail("MCW_VULKAN_DEVICE=" + std::string(env) + " is not a device index below " +
           std::to_string(n));
    if (!compute_family(devices[size_t(index)], &best_family))
      fail("device " + std::string(env) + " has no compute queue");
    best = int(index);
  } else {
    for (uint32_t i = 0; i < n; ++i) {
      VkPhysicalDeviceProperties p;
      vkGetPhysicalDeviceProperties(devices[i], &p);
      uint32_t family = 0;
      if (!compute_family(devices[i], &family)) continue;
      if (const int r = device_rank(p.deviceType); r < best_rank)
        best = int(i), best_rank = r, best_family = family;
    }
    if (best < 0) fail("no device with a compute queue");
  }
  physical_ = devices[size_t(best)];
  queue_family_ = best_family;
  VkPhysicalDeviceProperties p;
  vkGetPhysicalDeviceProperties(physical_, &p);
  device_name_ = p.deviceName;
  device_type_ = p.deviceType;
  max_storage_range_ = p.limits.maxStorageBufferRange;
  for (int a = 0; a < 3; ++a) max_groups_[a] = p.limits.maxComputeWorkGroupCount[a];
}

std::shared_ptr<VulkanCompute> VulkanCompute::shared(std::string* reason) {
  static std::mutex mutex;
  static std::shared_ptr<VulkanCompute> context;
  static std::string failure;
  static bool tried = false;
  std::lock_guard lock(mutex);
  if (!tried) {
    tried = true;
    try {
      context = std::make_shared<VulkanCompute>();
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  if (!context && reason) *reason = failure;
  return context;
}

VulkanBuffer VulkanCompute::buffer(size_t bytes) {
  if (bytes == 0) bytes = 4;
  VulkanBuffer b;
  b.device_ = device_;
  VkBufferCreateInfo bci{};
  bci.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  bci.size = bytes;
  bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
  bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(vkCreateBuffer(device_, &bci, nullptr, &b.buffer_), "vkCreateBuffer");
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(device_, b.buffer_, &req);
  VkPhysicalDeviceMemoryProperties mem;
  vkGetPhysicalDeviceMemoryProperties(physical_, &mem);
  const VkMemoryPropertyFlags want =
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  uint32_t type = UINT32_MAX;
  for (uint32_t i = 0; i < mem.memoryTypeCount && type == UINT32_MAX; ++i)
    if ((req.memoryTypeBits & (1u << i)) && (mem.memoryTypes[i].propertyFlags & want) == want)
      type = i;
  if (type == UINT32_MAX) fail("no host-visible coherent memory for a storage buffer");
  VkMemoryAllocateInfo mai{};
  mai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  mai.allocationSize = req.size;
  mai.memoryTypeIndex = type;
  check(vkAllocateMemory(device_, &mai, nullptr, &b.memory_), "vkAllocateMemory");
  check(vkBindBufferMemory(device_, b.buffer_, b.memory_, 0), "vkBindBufferMemory");
  check(vkMapMemory(device_, b.memory_, 0, VK_WHOLE_SIZE, 0, &b.mapped_), "vkMapMemory");
  b.size_ = bytes;
  return b;
}

ComputePipeline VulkanCompute::pipeline(std::span<const uint32_t> spirv, uint32_t buffers,
                                        uint32_t push_bytes) {
  ComputePipeline p;
  p.device_ = device_;
  p.buffers_ = buffers;
  p.push_bytes_ = push_bytes;
  VkShaderModuleCreateInfo smci{};
  smci.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
  smci.codeSize = spirv.size_bytes();
  smci.pCode = spirv.data();
  check(vkCreateShaderModule(device_, &smci, nullptr, &p.module_), "vkCreateShaderModule");

  std::vector<VkDescriptorSetLayoutBinding> bindings(buffers);
  for (uint32_t i = 0; i < buffers; ++i) {
    bindings[i] = {};
    bindings[i].binding = i;
    bindings[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    bindings[i].descriptorCount = 1;
    bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo dslci{};
  dslci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
  dslci.bindingCount = buffers;
  dslci.pBindings = bindings.data();
  check(vkCreateDescriptorSetLayout(device_, &dslci, nullptr, &p.set_layout_),
        "vkCreateDescriptorSetLayout");

  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes};
  VkPipelineLayoutCreateInfo plci{};
  plci.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
  plci.setLayoutCount = 1;
  plci.pSetLayouts = &p.set_layout_;
  plci.pushConstantRangeCount = push_bytes ? 1 : 0;
  plci.pPushConstantRanges = &range;
  check(vkCreatePipelineLayout(device_, &plci, nullptr, &p.layout_), "vkCreatePipelineLayout");

  VkComputePipelineCreateInfo cpci{};

  cpci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
  cpci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  cpci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  cpci.stage.module = p.module_;
  cpci.stage.pName = "main";
  cpci.layout = p.layout_;
  check(vkCreateComputePipelines(device_, VK_NULL_HANDLE, 1, &cpci, nullptr, &p.pipeline_),
        "vkCreateComputePipelines");
  return p;
}

const ComputePipeline& VulkanCompute::cached_pipeline(const std::string& key,
                                                      std::span<const uint32_t> spirv,
                                                      uint32_t buffers, uint32_t push_bytes) {
  std::lock_guard lock(cache_mutex_);
  auto it = pipelines_.find(key);
  if (it == pipelines_.end())
    it = pipelines_.emplace(key, pipeline(spirv, buffers, push_bytes)).first;
  return it->second;
}

void VulkanCompute::dispatch(const ComputePipeline& p, std::span<const VulkanBuffer* const> buffers,
                             const void* push, uint32_t gx, uint32_t gy, uint32_t gz) {
  if (buffers.size() != p.buffers_) fail("dispatch: wrong number of buffers");
  if (gx > max_groups_[0] || gy > max_groups_[1] || gz > max_groups_[2])
    fail("dispatch of " + std::to_string(gx) + "x" + std::to_string(gy) + "x" + std::to_string(gz) +
         " workgroups exceeds the device's limit");
  std::lock_guard lock(submit_mutex_);
  // A pool per dispatch keeps the context free of per-call bookkeeping; it is cheap next
  // to the kernels it feeds.
  VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, std::max(1u, p.buffers_)};
  VkDescriptorPoolCreateInfo dpci{};
  dpci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
  dpci.maxSets = 1;
  dpci.poolSizeCount = 1;
  dpci.pPoolSizes = &size;
  VkDescriptorPool dpool = VK_NULL_HANDLE;
  check(vkCreateDescriptorPool(device_, &dpci, nullptr, &dpool), "vkCreateDescriptorPool");
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  auto cleanup = [&] {
    if (cmd) vkFreeCommandBuffers(device_, pool_, 1, &cmd);
    vkDestroyDescriptorPool(device_, dpool, nullptr);
  };
  try {
    VkDescriptorSetAllocateInfo dsai{};
    dsai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
    dsai.descriptorPool = dpool;
    dsai.descriptorSetCount = 1;
    dsai.pSetLayouts = &p.set_layout_;
    VkDescriptorSet set = VK_NULL_HANDLE;
    check(vkAllocateDescriptorSets(device_, &dsai, &set), "vkAllocateDescriptorSets");
    std::vector<VkDescriptorBufferInfo> infos(buffers.size());
    std::vector<VkWriteDescriptorSet> writes(buffers.size());
    for (size_t i = 0; i < buffers.size(); ++i) {
      infos[i] = {buffers[i]->handle(), 0, VK_WHOLE_SIZE};
      writes[i] = {};
      writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
      writes[i].dstSet = set;
      writes[i].dstBinding = uint32_t(i);
      writes[i].descriptorCount = 1;
      writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      writes[i].pBufferInfo = &infos[i];
    }
    vkUpdateDescriptorSets(device_, uint32_t(writes.size()), writes.data(), 0, nullptr);

    VkCommandBufferAllocateInfo cbai{};

    cbai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    cbai.commandPool = pool_;
    cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    cbai.commandBufferCount = 1;
    check(vkAllocateCommandBuffers(device_, &cbai, &cmd), "vkAllocateCommandBuffers");
    VkCommandBufferBeginInfo begin{};
    begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    check(vkBeginCommandBuffer(cmd, &begin), "vkBeginCommandBuffer");
    vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline_);
    vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout_, 0, 1, &set, 0, nullptr);
    if (p.push_bytes_)
      vkCmdPushConstants(cmd, p.layout_, VK_SHADER_STAGE_COMPUTE_BIT, 0, p.push_bytes_, push);
    vkCmdDispatch(cmd, gx, gy, gz);
    // Results are read through the host mapping after the fence.
    VkMemoryBarrier barrier{};
    barrier.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0,
                         1, &barrier, 0, nullptr, 0, nullptr);
    check(vkEndCommandBuffer(cmd), "vkEndCommandBuffer");
    VkSubmitInfo si{};
    si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd;
    check(vkResetFences(device_, 1, &fence_), "vkResetFences");
    check(vkQueueSubmit(queue_, 1, &si, fence_), "vkQueueSubmit");
    check(vkWaitForFences(device_, 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
}

}  // namespace mcw::vulkan
