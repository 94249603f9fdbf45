// A Vulkan device for compute: the loader opened at run time, the device list, and one logical device
// with its queue, buffers, compute pipelines (one per shader in spirv.inc) and a command recording that
// is submitted once per forward segment. Every failure is a VulkanError naming the device and the need.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "vulkan-abi.h"

namespace glm::vulkan {

class VulkanError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DeviceInfo {
  int index = 0;
  std::string name;
  std::string type;  // "discrete", "integrated", "virtual", "cpu" or "other"
  bool gpu = false;  // discrete or integrated
  uint64_t deviceLocalBytes = 0;
  bool storage16 = false;  // storageBuffer16BitAccess, needed by the f16, q40 and q80 shaders
  uint32_t apiVersion = 0;
  uint32_t maxStorageBufferRange = 0;
  uint32_t subgroupSize = 0;
};

// The Vulkan devices of this machine; throws VulkanError when there is no loader or it fails.
std::vector<DeviceInfo> listDevices();

// The shaders compiled into spirv.inc (scripts/build-shaders.mjs keeps the two lists in step).
enum class Shader : int {
#define GLM_SHADER(name, bindings, source, variant) name,
#include "shaders.def"
#undef GLM_SHADER
  Count
};

class Context;

// A storage buffer in device-local memory (or host-visible memory for staging), freed with its owner.
struct Buffer {
  Context* owner = nullptr;
  vk::Buffer buffer = 0;
  vk::DeviceMemory memory = 0;
  size_t bytes = 0;
  void* mapped = nullptr;  // host-visible buffers only
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();
};

// One binding of a dispatch: a whole buffer or a range of it.
struct Binding {
  const Buffer* buffer;
  size_t offset = 0;
  size_t bytes = 0;  // 0: to the end of the buffer, or as much of it as one binding may cover
};

class Context {
 public:
  // Opens device `index` of listDevices(); throws VulkanError.
  explicit Context(int index);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceInfo& info() const { return info_; }
  // The largest range one binding may cover: the device's, or less when GLM_ENGINE_VULKAN_MAX_BINDING
  // (bytes) says so, which lets the tests split a small model's tensors the way a large one's are.
  size_t maxBinding() const { return maxBinding_; }

  // Device-local storage of `bytes`; `what` names it in an out-of-memory error.
  std::unique_ptr<Buffer> allocate(size_t bytes, const std::string& what);
  // Copies host data into a device buffer / device data back to the host; both wait for the GPU.
  void upload(const Buffer& to, size_t offset, const void* data, size_t bytes);
  void download(const Buffer& from, size_t offset, void* data, size_t bytes);

  // Records a dispatch of `shader` over groups (x, y, z) with its bindings (in the shader's binding
  // order) and push constants (at most 128 bytes); a barrier orders it after the dispatches before.
  void dispatch(Shader shader, const std::vector<Binding>& bindings, const void* push, size_t pushBytes, uint32_t x, uint32_t y = 1, uint32_t z = 1);
  // Submits what was recorded and waits for it.
  void flush();

 private:
  struct Pipeline {
    vk::ShaderModule module = 0;
    vk::DescriptorSetLayout setLayout = 0;
    vk::PipelineLayout layout = 0;
    vk::Pipeline pipeline = 0;
    uint32_t bindings = 0;
  };
  struct Api;

  void check(vk::Result result, const char* call) const;
  uint32_t memoryType(uint32_t allowed, vk::Flags want, vk::Flags avoid) const;
  std::unique_ptr<Buffer> create(size_t bytes, bool hostVisible, const std::string& what);
  friend struct Buffer;
  void destroy(Buffer& b);
  const Pipeline& pipeline(Shader shader);
  void begin();
  void copy(const Buffer& from, size_t fromOffset, const Buffer& to, size_t toOffset, size_t bytes);
  Buffer& staging(size_t bytes);

  std::unique_ptr<Api> api_;
  DeviceInfo info_;
  size_t maxBinding_ = 0;
  vk::PhysicalDeviceMemoryProperties memory_{};
  vk::Device device_ = nullptr;
  vk::Queue queue_ = nullptr;
  uint32_t family_ = 0;
  vk::CommandPool commandPool_ = 0;
  vk::CommandBuffer commands_ = nullptr;
  vk::DescriptorPool descriptors_ = 0;
  vk::Fence fence_ = 0;
  bool recording_ = false;
  uint32_t setsUsed_ = 0;
  std::vector<Pipeline> pipelines_;
  std::unique_ptr<Buffer> staging_;
};

}  // namespace glm::vulkan
