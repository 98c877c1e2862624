// A small Vulkan compute context for the engine's GPU kernels: one instance, one physical
// device with a compute queue (a discrete or integrated GPU when there is one, else any,
// lavapipe included; MCW_VULKAN_DEVICE=<index> picks one), host-visible storage buffers,
// pipelines built from SPIR-V words, and synchronous dispatches. Every failure throws
// mcw::Error whose what() is one line, "Vulkan: ...".
#pragma once
#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>

namespace mcw::vulkan {

class VulkanCompute;

// A host-visible, host-coherent storage buffer, mapped for its whole life.
class VulkanBuffer {
 public:
  VulkanBuffer() = default;
  VulkanBuffer(VulkanBuffer&& o) noexcept { *this = std::move(o); }
  VulkanBuffer& operator=(VulkanBuffer&& o) noexcept;
  VulkanBuffer(const VulkanBuffer&) = delete;
  VulkanBuffer& operator=(const VulkanBuffer&) = delete;
  ~VulkanBuffer() { reset(); }

  void* data() const { return mapped_; }
  size_t size() const { return size_; }
  VkBuffer handle() const { return buffer_; }

 private:
  friend class VulkanCompute;
  void reset();
  VkDevice device_ = VK_NULL_HANDLE;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  void* mapped_ = nullptr;
  size_t size_ = 0;
};

// A compute pipeline whose descriptor set 0 holds `buffers` storage buffers at bindings
// 0..buffers-1, and whose push-constant block is `push_bytes` long.
class ComputePipeline {
 public:
  ComputePipeline() = default;
  ComputePipeline(ComputePipeline&& o) noexcept { *this = std::move(o); }
  ComputePipeline& operator=(ComputePipeline&& o) noexcept;
  ComputePipeline(const ComputePipeline&) = delete;
  ComputePipeline& operator=(const ComputePipeline&) = delete;
  ~ComputePipeline() { reset(); }

  uint32_t buffer_count() const { return buffers_; }
  uint32_t push_bytes() const { return push_bytes_; }

 private:
  friend class VulkanCompute;
  void reset();
  VkDevice device_ = VK_NULL_HANDLE;
  VkShaderModule module_ = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
  uint32_t buffers_ = 0, push_bytes_ = 0;
};

class VulkanCompute {
 public:
  // Throws mcw::Error ("Vulkan: ...") when there is no driver or no usable device.
  VulkanCompute();
  ~VulkanCompute();
  VulkanCompute(const VulkanCompute&) = delete;
  VulkanCompute& operator=(const VulkanCompute&) = delete;

  // The process-wide context, created on first use. Null when Vulkan is unavailable;
  // `reason` then receives the one-line cause (the first attempt's, kept).
  static std::shared_ptr<VulkanCompute> shared(std::string* reason = nullptr);

  const std::string& device_name() const { return device_name_; }
  bool is_cpu_device() const { return device_type_ == VK_PHYSICAL_DEVICE_TYPE_CPU; }
  // The largest storage buffer one binding can see.
  uint64_t max_storage_buffer_range() const { return max_storage_range_; }
  uint32_t max_workgroup_count(int axis) const { return max_groups_[axis]; }

  VulkanBuffer buffer(size_t bytes);
  ComputePipeline pipeline(std::span<const uint32_t> spirv, uint32_t buffers, uint32_t push_bytes);
  // The pipeline built once per context under `key` (a kernel's name).
  const ComputePipeline& cached_pipeline(const std::string& key, std::span<const uint32_t> spirv,
                                         uint32_t buffers, uint32_t push_bytes);
  // Records, submits and waits for one dispatch of (gx, gy, gz) workgroups. Thread-safe.
  void dispatch(const ComputePipeline& p, std::span<const VulkanBuffer* const> buffers,
                const void* push, uint32_t gx, uint32_t gy = 1, uint32_t gz = 1);

 private:
  void pick_device();
  void release();
  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkPhysicalDeviceType device_type_ = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  std::string device_name_;
  uint64_t max_storage_range_ = 0;
  uint32_t max_groups_[3] = {0, 0, 0};
  std::mutex submit_mutex_, cache_mutex_;
  std::map<std::string, ComputePipeline> pipelines_;
};

// "VK_ERROR_INCOMPATIBLE_DRIVER" for the codes a user may meet, else the number.
std::string vk_result_name(VkResult r);

}  // namespace mcw::vulkan
