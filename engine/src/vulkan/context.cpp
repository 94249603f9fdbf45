#include "context.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace glm::vulkan {

namespace {

// The SPIR-V of every shader, generated from shaders/*.comp by `npm run build:shaders`.
#include "spirv.inc"

struct ShaderCode {
  const uint32_t* words;
  size_t bytes;
  uint32_t bindings;
};

const ShaderCode kShaders[] = {
#define GLM_SHADER(name, bindings, source, variant) {k##name##Spirv, sizeof(k##name##Spirv), bindings},
#include "shaders.def"
#undef GLM_SHADER
};

std::string resultName(vk::Result r) {
  switch (r) {
    case vk::kErrorOutOfHostMemory:
      return "out of host memory";
    case vk::kErrorOutOfDeviceMemory:
      return "out of device memory";
    case -3:
      return "initialization failed";
    case vk::kErrorDeviceLost:
      return "device lost";
    case -7:
      return "extension not present";
    case -8:
      return "feature not present";
    case -9:
      return "incompatible driver";
    default:
      return "VkResult " + std::to_string(r);
  }
}

// The loader and one instance for the whole process (never unloaded: drivers keep threads alive).
struct Loader {
  void* library = nullptr;
  vk::Instance instance = nullptr;
  vk::PFN_GetInstanceProcAddr getInstanceProc = nullptr;
  std::string error;

  template <typename F>
  F get(const char* name) const {
    auto f = reinterpret_cast<F>(getInstanceProc(instance, name));
    if (!f) throw VulkanError(std::string("the Vulkan loader lacks ") + name);
    return f;
  }
};

const char* const kLibraries[] = {
#if defined(__APPLE__)
    "libvulkan.1.dylib", "libMoltenVK.dylib",
#else
    "libvulkan.so.1", "libvulkan.so",
#endif
};

Loader& loader() {
  static Loader l;
  static std::once_flag once;
  std::call_once(once, [] {
    for (const char* name : kLibraries) {
      l.library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (l.library) break;
    }
    if (!l.library) {
      l.error = "no Vulkan loader (libvulkan.so.1) on this machine: install the GPU driver's Vulkan support (Debian: libvulkan1 and mesa-vulkan-drivers or the NVIDIA driver)";
      return;
    }
    l.getInstanceProc = reinterpret_cast<vk::PFN_GetInstanceProcAddr>(dlsym(l.library, "vkGetInstanceProcAddr"));
    if (!l.getInstanceProc) {
      l.error = "the Vulkan loader has no vkGetInstanceProcAddr";
      return;
    }
    auto create = reinterpret_cast<vk::PFN_CreateInstance>(l.getInstanceProc(nullptr, "vkCreateInstance"));
    vk::ApplicationInfo app{vk::kApplicationInfo, nullptr, "glm-engine", 1, "glm-engine", 1, vk::makeApiVersion(1, 1)};
    vk::InstanceCreateInfo info{vk::kInstanceCreateInfo, nullptr, 0, &app, 0, nullptr, 0, nullptr};
    const vk::Result r = create ? create(&info, nullptr, &l.instance) : -3;
    if (r != vk::kSuccess) l.error = "cannot create a Vulkan 1.1 instance: " + resultName(r);
  });
  if (!l.error.empty()) throw VulkanError(l.error);
  return l;
}

const char* typeName(vk::PhysicalDeviceType t) {
  switch (t) {
    case vk::kTypeDiscreteGpu:
      return "discrete";
    case vk::kTypeIntegratedGpu:
      return "integrated";
    case vk::kTypeVirtualGpu:
      return "virtual";
    case vk::kTypeCpu:
      return "cpu";
    default:
      return "other";
  }
}

std::vector<vk::PhysicalDevice> physicalDevices() {
  Loader& l = loader();
  auto enumerate = l.get<vk::PFN_EnumeratePhysicalDevices>("vkEnumeratePhysicalDevices");
  uint32_t count = 0;
  vk::Result r = enumerate(l.instance, &count, nullptr);
  std::vector<vk::PhysicalDevice> devices(count);
  if (r == vk::kSuccess && count > 0) r = enumerate(l.instance, &count, devices.data());
  if (r != vk::kSuccess && r != vk::kIncomplete) throw VulkanError("cannot list Vulkan devices: " + resultName(r));
  devices.resize(count);
  return devices;
}

DeviceInfo describe(vk::PhysicalDevice device, int index) {
  Loader& l = loader();
  vk::PhysicalDeviceSubgroupProperties subgroup{vk::kPhysicalDeviceSubgroupProperties, nullptr, 0, 0, 0, 0};
  vk::PhysicalDeviceProperties2 props{};
  props.sType = vk::kPhysicalDeviceProperties2;
  props.pNext = &subgroup;
  l.get<vk::PFN_GetPhysicalDeviceProperties2>("vkGetPhysicalDeviceProperties2")(device, &props);
  vk::PhysicalDevice16BitStorageFeatures storage16{vk::kPhysicalDevice16BitStorageFeatures, nullptr, 0, 0, 0, 0};
  vk::PhysicalDeviceFeatures2 features{};
  features.sType = vk::kPhysicalDeviceFeatures2;
  features.pNext = &storage16;
  l.get<vk::PFN_GetPhysicalDeviceFeatures2>("vkGetPhysicalDeviceFeatures2")(device, &features);
  vk::PhysicalDeviceMemoryProperties memory{};
  l.get<vk::PFN_GetPhysicalDeviceMemoryProperties>("vkGetPhysicalDeviceMemoryProperties")(device, &memory);

  DeviceInfo info;
  info.index = index;
  info.name = std::string(props.properties.deviceName, strnlen(props.properties.deviceName, sizeof props.properties.deviceName));
  info.type = typeName(props.properties.deviceType);
  info.gpu = props.properties.deviceType == vk::kTypeDiscreteGpu || props.properties.deviceType == vk::kTypeIntegratedGpu;
  for (uint32_t h = 0; h < memory.memoryHeapCount; h++) {
    if (memory.memoryHeaps[h].flags & vk::kHeapDeviceLocal) info.deviceLocalBytes += memory.memoryHeaps[h].size;
  }
  info.storage16 = storage16.storageBuffer16BitAccess != 0;
  info.apiVersion = props.properties.apiVersion;
  info.maxStorageBufferRange = props.properties.limits.maxStorageBufferRange;
  info.subgroupSize = subgroup.subgroupSize;
  return info;
}

std::string mib(uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

}  // namespace

std::vector<DeviceInfo> listDevices() {
  const std::vector<vk::PhysicalDevice> devices = physicalDevices();
  std::vector<DeviceInfo> out;
  for (size_t i = 0; i < devices.size(); i++) out.push_back(describe(devices[i], static_cast<int>(i)));
  return out;
}

// Device-level entry points, looked up once per device.
struct Context::Api {
  vk::PFN_DestroyDevice destroyDevice;
  vk::PFN_GetDeviceQueue getDeviceQueue;
  vk::PFN_CreateBuffer createBuffer;
  vk::PFN_DestroyBuffer destroyBuffer;
  vk::PFN_GetBufferMemoryRequirements getBufferMemoryRequirements;
  vk::PFN_AllocateMemory allocateMemory;
  vk::PFN_FreeMemory freeMemory;
  vk::PFN_BindBufferMemory bindBufferMemory;
  vk::PFN_MapMemory mapMemory;
  vk::PFN_UnmapMemory unmapMemory;
  vk::PFN_CreateShaderModule createShaderModule;
  vk::PFN_DestroyShaderModule destroyShaderModule;
  vk::PFN_CreateDescriptorSetLayout createDescriptorSetLayout;
  vk::PFN_DestroyDescriptorSetLayout destroyDescriptorSetLayout;
  vk::PFN_CreatePipelineLayout createPipelineLayout;
  vk::PFN_DestroyPipelineLayout destroyPipelineLayout;
  vk::PFN_CreateComputePipelines createComputePipelines;
  vk::PFN_DestroyPipeline destroyPipeline;
  vk::PFN_CreateDescriptorPool createDescriptorPool;
  vk::PFN_DestroyDescriptorPool destroyDescriptorPool;
  vk::PFN_ResetDescriptorPool resetDescriptorPool;
  vk::PFN_AllocateDescriptorSets allocateDescriptorSets;
  vk::PFN_UpdateDescriptorSets updateDescriptorSets;
  vk::PFN_CreateCommandPool createCommandPool;
  vk::PFN_DestroyCommandPool destroyCommandPool;
  vk::PFN_AllocateCommandBuffers allocateCommandBuffers;
  vk::PFN_BeginCommandBuffer beginCommandBuffer;
  vk::PFN_EndCommandBuffer endCommandBuffer;
  vk::PFN_ResetCommandBuffer resetCommandBuffer;
  vk::PFN_CmdBindPipeline cmdBindPipeline;
  vk::PFN_CmdBindDescriptorSets cmdBindDescriptorSets;
  vk::PFN_CmdPushConstants cmdPushConstants;
  vk::PFN_CmdDispatch cmdDispatch;
  vk::PFN_CmdPipelineBarrier cmdPipelineBarrier;
  vk::PFN_CmdCopyBuffer cmdCopyBuffer;
  vk::PFN_QueueSubmit queueSubmit;
  vk::PFN_CreateFence createFence;
  vk::PFN_DestroyFence destroyFence;
  vk::PFN_WaitForFences waitForFences;
  vk::PFN_ResetFences resetFences;
  vk::PFN_DeviceWaitIdle deviceWaitIdle;
};

// Descriptor sets one pool holds; a recording that needs more is submitted early.
constexpr uint32_t kSetsPerPool = 4096;
constexpr uint32_t kMaxBindings = 6;
constexpr uint32_t kPushBytes = 128;
constexpr size_t kStagingBytes = 16u << 20;

Context::Context(int index) : api_(std::make_unique<Api>()) {
  Loader& l = loader();
  const std::vector<vk::PhysicalDevice> devices = physicalDevices();
  if (devices.empty()) throw VulkanError("no Vulkan device on this machine");
  if (index < 0 || index >= static_cast<int>(devices.size())) {
    throw VulkanError("no Vulkan device " + std::to_string(index) + " (this machine has " + std::to_string(devices.size()) + ")");
  }
  const vk::PhysicalDevice physical = devices[index];
  info_ = describe(physical, index);
  const std::string label = "Vulkan device " + std::to_string(index) + " (" + info_.name + ")";
  if (!info_.storage16) throw VulkanError(label + " lacks 16-bit storage buffers (storageBuffer16BitAccess), which the f16, q40 and q80 shaders need");
  l.get<vk::PFN_GetPhysicalDeviceMemoryProperties>("vkGetPhysicalDeviceMemoryProperties")(physical, &memory_);
  maxBinding_ = info_.maxStorageBufferRange;
  if (const char* limit = std::getenv("GLM_ENGINE_VULKAN_MAX_BINDING")) {
    maxBinding_ = std::min<size_t>(maxBinding_, std::max(std::strtoull(limit, nullptr, 10), 256ull));
  }

  auto queueFamilies = l.get<vk::PFN_GetPhysicalDeviceQueueFamilyProperties>("vkGetPhysicalDeviceQueueFamilyProperties");
  uint32_t familyCount = 0;
  queueFamilies(physical, &familyCount, nullptr);
  std::vector<vk::QueueFamilyProperties> families(familyCount);
  queueFamilies(physical, &familyCount, families.data());
  family_ = familyCount;
  for (uint32_t f = 0; f < familyCount && family_ == familyCount; f++) {
    if (families[f].queueFlags & vk::kQueueCompute) family_ = f;
  }
  if (family_ == familyCount) throw VulkanError(label + " has no compute queue");

  const float priority = 1.0f;
  vk::DeviceQueueCreateInfo queueInfo{vk::kDeviceQueueCreateInfo, nullptr, 0, family_, 1, &priority};
  vk::PhysicalDevice16BitStorageFeatures storage16{vk::kPhysicalDevice16BitStorageFeatures, nullptr, 1, 0, 0, 0};
  vk::PhysicalDeviceFeatures2 features{};
  features.sType = vk::kPhysicalDeviceFeatures2;
  features.pNext = &storage16;
  vk::DeviceCreateInfo deviceInfo{vk::kDeviceCreateInfo, &features, 0, 1, &queueInfo, 0, nullptr, 0, nullptr, nullptr};
  const vk::Result created = l.get<vk::PFN_CreateDevice>("vkCreateDevice")(physical, &deviceInfo, nullptr, &device_);
  if (created != vk::kSuccess) throw VulkanError("cannot open " + label + ": " + resultName(created));

  auto getDeviceProc = l.get<vk::PFN_GetDeviceProcAddr>("vkGetDeviceProcAddr");
  auto load = [&](auto& f, const char* name) {
    f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(getDeviceProc(device_, name));
    if (!f) throw VulkanError(label + ": the driver lacks " + name);
  };
  Api& a = *api_;
  load(a.destroyDevice, "vkDestroyDevice");
  load(a.getDeviceQueue, "vkGetDeviceQueue");
  load(a.createBuffer, "vkCreateBuffer");
  load(a.destroyBuffer, "vkDestroyBuffer");
  load(a.getBufferMemoryRequirements, "vkGetBufferMemoryRequirements");
  load(a.allocateMemory, "vkAllocateMemory");
  load(a.freeMemory, "vkFreeMemory");
  load(a.bindBufferMemory, "vkBindBufferMemory");
  load(a.mapMemory, "vkMapMemory");
  load(a.unmapMemory, "vkUnmapMemory");
  load(a.createShaderModule, "vkCreateShaderModule");
  load(a.destroyShaderModule, "vkDestroyShaderModule");
  load(a.createDescriptorSetLayout, "vkCreateDescriptorSetLayout");
  load(a.destroyDescriptorSetLayout, "vkDestroyDescriptorSetLayout");
  load(a.createPipelineLayout, "vkCreatePipelineLayout");
  load(a.destroyPipelineLayout, "vkDestroyPipelineLayout");
  load(a.createComputePipelines, "vkCreateComputePipelines");
  load(a.destroyPipeline, "vkDestroyPipeline");
  load(a.createDescriptorPool, "vkCreateDescriptorPool");
  load(a.destroyDescriptorPool, "vkDestroyDescriptorPool");
  load(a.resetDescriptorPool, "vkResetDescriptorPool");
  load(a.allocateDescriptorSets, "vkAllocateDescriptorSets");
  load(a.updateDescriptorSets, "vkUpdateDescriptorSets");
  load(a.createCommandPool, "vkCreateCommandPool");
  load(a.destroyCommandPool, "vkDestroyCommandPool");
  load(a.allocateCommandBuffers, "vkAllocateCommandBuffers");
  load(a.beginCommandBuffer, "vkBeginCommandBuffer");
  load(a.endCommandBuffer, "vkEndCommandBuffer");
  load(a.resetCommandBuffer, "vkResetCommandBuffer");
  load(a.cmdBindPipeline, "vkCmdBindPipeline");
  load(a.cmdBindDescriptorSets, "vkCmdBindDescriptorSets");
  load(a.cmdPushConstants, "vkCmdPushConstants");
  load(a.cmdDispatch, "vkCmdDispatch");
  load(a.cmdPipelineBarrier, "vkCmdPipelineBarrier");
  load(a.cmdCopyBuffer, "vkCmdCopyBuffer");
  load(a.queueSubmit, "vkQueueSubmit");
  load(a.createFence, "vkCreateFence");
  load(a.destroyFence, "vkDestroyFence");
  load(a.waitForFences, "vkWaitForFences");
  load(a.resetFences, "vkResetFences");
  load(a.deviceWaitIdle, "vkDeviceWaitIdle");

  a.getDeviceQueue(device_, family_, 0, &queue_);
  vk::CommandPoolCreateInfo poolInfo{vk::kCommandPoolCreateInfo, nullptr, vk::kCommandPoolResetBuffer, family_};
  check(a.createCommandPool(device_, &poolInfo, nullptr, &commandPool_), "vkCreateCommandPool");
  vk::CommandBufferAllocateInfo bufferInfo{vk::kCommandBufferAllocateInfo, nullptr, commandPool_, 0, 1};
  check(a.allocateCommandBuffers(device_, &bufferInfo, &commands_), "vkAllocateCommandBuffers");
  vk::DescriptorPoolSize size{vk::kDescriptorStorageBuffer, kSetsPerPool * kMaxBindings};
  vk::DescriptorPoolCreateInfo descriptorInfo{vk::kDescriptorPoolCreateInfo, nullptr, 0, kSetsPerPool, 1, &size};
  check(a.createDescriptorPool(device_, &descriptorInfo, nullptr, &descriptors_), "vkCreateDescriptorPool");
  vk::FenceCreateInfo fenceInfo{vk::kFenceCreateInfo, nullptr, 0};
  check(a.createFence(device_, &fenceInfo, nullptr, &fence_), "vkCreateFence");
  pipelines_.resize(static_cast<size_t>(Shader::Count));
}

Context::~Context() {
  if (!device_) return;
  Api& a = *api_;
  a.deviceWaitIdle(device_);
  staging_.reset();
  for (Pipeline& p : pipelines_) {
    if (p.pipeline) a.destroyPipeline(device_, p.pipeline, nullptr);
    if (p.layout) a.destroyPipelineLayout(device_, p.layout, nullptr);
    if (p.setLayout) a.destroyDescriptorSetLayout(device_, p.setLayout, nullptr);
    if (p.module) a.destroyShaderModule(device_, p.module, nullptr);
  }
  if (fence_) a.destroyFence(device_, fence_, nullptr);
  if (descriptors_) a.destroyDescriptorPool(device_, descriptors_, nullptr);
  if (commandPool_) a.destroyCommandPool(device_, commandPool_, nullptr);
  a.destroyDevice(device_, nullptr);
}

void Context::check(vk::Result result, const char* call) const {
  if (result == vk::kSuccess) return;
  throw VulkanError("Vulkan device " + std::to_string(info_.index) + " (" + info_.name + "): " + call + " failed: " + resultName(result));
}

uint32_t Context::memoryType(uint32_t allowed, vk::Flags want, vk::Flags avoid) const {
  for (uint32_t pass = 0; pass < 2; pass++) {
    for (uint32_t t = 0; t < memory_.memoryTypeCount; t++) {
      const vk::Flags flags = memory_.memoryTypes[t].propertyFlags;
      if ((allowed & (1u << t)) && (flags & want) == want && (pass == 1 || (flags & avoid) == 0)) return t;
    }
  }
  return UINT32_MAX;
}

Buffer::~Buffer() {
  if (owner) owner->destroy(*this);
}

std::unique_ptr<Buffer> Context::create(size_t bytes, bool hostVisible, const std::string& what) {
  Api& a = *api_;
  auto b = std::make_unique<Buffer>();
  b->bytes = bytes;
  vk::BufferCreateInfo info{vk::kBufferCreateInfo, nullptr, 0, std::max<size_t>(bytes, 4),
                            vk::kBufferStorage | vk::kBufferTransferSrc | vk::kBufferTransferDst, 0, 0, nullptr};
  check(a.createBuffer(device_, &info, nullptr, &b->buffer), "vkCreateBuffer");
  b->owner = this;  // from here the destructor frees what was made
  vk::MemoryRequirements req{};
  a.getBufferMemoryRequirements(device_, b->buffer, &req);
  const vk::Flags want = hostVisible ? vk::kMemoryHostVisible | vk::kMemoryHostCoherent : vk::kMemoryDeviceLocal;
  // Staging prefers cached system memory; device buffers avoid host-visible types where there is a choice.
  const uint32_t type = memoryType(req.memoryTypeBits, want | (hostVisible ? vk::kMemoryHostCached : 0), hostVisible ? 0 : vk::kMemoryHostVisible);
  const uint32_t chosen = type != UINT32_MAX ? type : memoryType(req.memoryTypeBits, want, 0);
  if (chosen == UINT32_MAX) throw VulkanError("Vulkan device " + std::to_string(info_.index) + " (" + info_.name + ") has no memory type for " + what);
  vk::MemoryAllocateInfo alloc{vk::kMemoryAllocateInfo, nullptr, req.size, chosen};
  const vk::Result r = a.allocateMemory(device_, &alloc, nullptr, &b->memory);
  if (r == vk::kErrorOutOfDeviceMemory || r == vk::kErrorOutOfHostMemory) {
    throw VulkanError("Vulkan device " + std::to_string(info_.index) + " (" + info_.name + ") is out of memory: " + what + " needs " + mib(req.size) +
                      " more (the device has " + mib(info_.deviceLocalBytes) +
                      " in all); for a mixture-of-experts model, --cpu-experts all|N keeps routed experts in system memory");
  }
  check(r, "vkAllocateMemory");
  check(a.bindBufferMemory(device_, b->buffer, b->memory, 0), "vkBindBufferMemory");
  if (hostVisible) check(a.mapMemory(device_, b->memory, 0, req.size, 0, &b->mapped), "vkMapMemory");
  return b;
}

void Context::destroy(Buffer& b) {
  Api& a = *api_;
  if (b.mapped) a.unmapMemory(device_, b.memory);
  if (b.buffer) a.destroyBuffer(device_, b.buffer, nullptr);
  if (b.memory) a.freeMemory(device_, b.memory, nullptr);
}

std::unique_ptr<Buffer> Context::allocate(size_t bytes, const std::string& what) { return create(bytes, false, what); }

Buffer& Context::staging(size_t bytes) {
  if (!staging_ || staging_->bytes < bytes) {
    staging_.reset();
    staging_ = create(std::max(bytes, kStagingBytes), true, "the staging buffer");
  }
  return *staging_;
}

void Context::upload(const Buffer& to, size_t offset, const void* data, size_t bytes) {
  const auto* src = static_cast<const uint8_t*>(data);
  for (size_t done = 0; done < bytes;) {
    const size_t part = std::min(bytes - done, kStagingBytes);
    flush();  // the staging buffer is free once earlier copies have run
    Buffer& s = staging(part);
    std::memcpy(s.mapped, src + done, part);
    copy(s, 0, to, offset + done, part);
    done += part;
  }
  flush();
}

void Context::download(const Buffer& from, size_t offset, void* data, size_t bytes) {
  auto* dst = static_cast<uint8_t*>(data);
  for (size_t done = 0; done < bytes;) {
    const size_t part = std::min(bytes - done, kStagingBytes);
    Buffer& s = staging(part);
    copy(from, offset + done, s, 0, part);
    flush();
    std::memcpy(dst + done, s.mapped, part);
    done += part;
  }
}

void Context::begin() {
  if (recording_) return;
  vk::CommandBufferBeginInfo info{vk::kCommandBufferBeginInfo, nullptr, vk::kCommandBufferOneTimeSubmit, nullptr};
  check(api_->beginCommandBuffer(commands_, &info), "vkBeginCommandBuffer");
  recording_ = true;
}

void Context::copy(const Buffer& from, size_t fromOffset, const Buffer& to, size_t toOffset, size_t bytes) {
  begin();
  Api& a = *api_;
  const vk::MemoryBarrier before{vk::kMemoryBarrier, nullptr, vk::kAccessShaderWrite | vk::kAccessTransferWrite | vk::kAccessHostWrite,
                                 vk::kAccessTransferRead | vk::kAccessTransferWrite};
  a.cmdPipelineBarrier(commands_, vk::kPipelineStageComputeShader | vk::kPipelineStageTransfer | vk::kPipelineStageHost, vk::kPipelineStageTransfer, 0, 1,
                       &before, 0, nullptr, 0, nullptr);
  const vk::BufferCopy region{fromOffset, toOffset, bytes};
  a.cmdCopyBuffer(commands_, from.buffer, to.buffer, 1, &region);
  const vk::MemoryBarrier after{vk::kMemoryBarrier, nullptr, vk::kAccessTransferWrite, vk::kAccessShaderRead | vk::kAccessShaderWrite | vk::kAccessHostRead};
  a.cmdPipelineBarrier(commands_, vk::kPipelineStageTransfer, vk::kPipelineStageComputeShader | vk::kPipelineStageHost, 0, 1, &after, 0, nullptr, 0, nullptr);
}

const Context::Pipeline& Context::pipeline(Shader shader) {
  Pipeline& p = pipelines_[static_cast<size_t>(shader)];
  if (p.pipeline) return p;
  Api& a = *api_;
  const ShaderCode& code = kShaders[static_cast<size_t>(shader)];
  vk::ShaderModuleCreateInfo moduleInfo{vk::kShaderModuleCreateInfo, nullptr, 0, code.bytes, code.words};
  check(a.createShaderModule(device_, &moduleInfo, nullptr, &p.module), "vkCreateShaderModule");
  std::vector<vk::DescriptorSetLayoutBinding> bindings(code.bindings);
  for (uint32_t i = 0; i < code.bindings; i++) bindings[i] = {i, vk::kDescriptorStorageBuffer, 1, vk::kStageCompute, nullptr};
  vk::DescriptorSetLayoutCreateInfo setInfo{vk::kDescriptorSetLayoutCreateInfo, nullptr, 0, code.bindings, bindings.data()};
  check(a.createDescriptorSetLayout(device_, &setInfo, nullptr, &p.setLayout), "vkCreateDescriptorSetLayout");
  const vk::PushConstantRange push{vk::kStageCompute, 0, kPushBytes};
  vk::PipelineLayoutCreateInfo layoutInfo{vk::kPipelineLayoutCreateInfo, nullptr, 0, 1, &p.setLayout, 1, &push};
  check(a.createPipelineLayout(device_, &layoutInfo, nullptr, &p.layout), "vkCreatePipelineLayout");
  vk::ComputePipelineCreateInfo info{};
  info.sType = vk::kComputePipelineCreateInfo;
  info.stage = {vk::kPipelineShaderStageCreateInfo, nullptr, 0, vk::kStageCompute, p.module, "main", nullptr};
  info.layout = p.layout;
  info.basePipelineIndex = -1;
  check(a.createComputePipelines(device_, 0, 1, &info, nullptr, &p.pipeline), "vkCreateComputePipelines");
  p.bindings = code.bindings;
  return p;
}

void Context::dispatch(Shader shader, const std::vector<Binding>& bindings, const void* push, size_t pushBytes, uint32_t x, uint32_t y, uint32_t z) {
  const Pipeline& p = pipeline(shader);
  if (bindings.size() != p.bindings) throw std::logic_error("shader bindings do not match");
  if (pushBytes > kPushBytes) throw std::logic_error("push constants exceed 128 bytes");
  if (setsUsed_ == kSetsPerPool) flush();
  begin();
  Api& a = *api_;
  vk::DescriptorSet set = 0;
  vk::DescriptorSetAllocateInfo allocInfo{vk::kDescriptorSetAllocateInfo, nullptr, descriptors_, 1, &p.setLayout};
  check(a.allocateDescriptorSets(device_, &allocInfo, &set), "vkAllocateDescriptorSets");
  setsUsed_++;
  std::vector<vk::DescriptorBufferInfo> infos(bindings.size());
  std::vector<vk::WriteDescriptorSet> writes(bindings.size());
  for (size_t i = 0; i < bindings.size(); i++) {
    const Binding& b = bindings[i];
    // A whole buffer is bound up to the limit (scratch buffers may be larger than a dispatch uses);
    // an explicit range must fit.
    const size_t range = b.bytes ? b.bytes : std::min(b.buffer->bytes - b.offset, maxBinding());
    if (range > maxBinding()) {
      throw VulkanError("Vulkan device " + std::to_string(info_.index) + " (" + info_.name + "): " + std::to_string(range) +
                        " bytes of activations exceed its binding limit of " + std::to_string(maxBinding()) + ": evaluate fewer tokens at a time");
    }
    infos[i] = {b.buffer->buffer, b.offset, std::max<size_t>(range, 4)};
    writes[i] = {vk::kWriteDescriptorSet, nullptr, set, static_cast<uint32_t>(i), 0, 1, vk::kDescriptorStorageBuffer, nullptr, &infos[i], nullptr};
  }
  a.updateDescriptorSets(device_, static_cast<uint32_t>(writes.size()), writes.data(), 0, nullptr);
  a.cmdBindPipeline(commands_, vk::kBindPointCompute, p.pipeline);
  a.cmdBindDescriptorSets(commands_, vk::kBindPointCompute, p.layout, 0, 1, &set, 0, nullptr);
  uint8_t constants[kPushBytes] = {};
  std::memcpy(constants, push, pushBytes);
  a.cmdPushConstants(commands_, p.layout, vk::kStageCompute, 0, kPushBytes, constants);
  a.cmdDispatch(commands_, x, y, z);
  // Each dispatch reads what the ones before wrote.
  const vk::MemoryBarrier barrier{vk::kMemoryBarrier, nullptr, vk::kAccessShaderWrite, vk::kAccessShaderRead | vk::kAccessShaderWrite};
  a.cmdPipelineBarrier(commands_, vk::kPipelineStageComputeShader, vk::kPipelineStageComputeShader, 0, 1, &barrier, 0, nullptr, 0, nullptr);
}

void Context::flush() {
  if (!recording_) return;
  Api& a = *api_;
  recording_ = false;
  check(a.endCommandBuffer(commands_), "vkEndCommandBuffer");
  vk::SubmitInfo submit{vk::kSubmitInfo, nullptr, 0, nullptr, nullptr, 1, &commands_, 0, nullptr};
  check(a.queueSubmit(queue_, 1, &submit, fence_), "vkQueueSubmit");
  check(a.waitForFences(device_, 1, &fence_, 1, UINT64_MAX), "vkWaitForFences");
  check(a.resetFences(device_, 1, &fence_), "vkResetFences");
  check(a.resetCommandBuffer(commands_, 0), "vkResetCommandBuffer");
  check(a.resetDescriptorPool(device_, descriptors_, 0), "vkResetDescriptorPool");
  setsUsed_ = 0;
}

}  // namespace glm::vulkan
