// The part of the Vulkan 1.1 C ABI this backend calls, declared here so that the engine builds without a
// Vulkan SDK: the loader (libvulkan.so.1) is opened at run time (loader.cpp) and the same binary runs
// where Vulkan is absent. Only the types, values and struct layouts used are declared; struct layouts
// follow the Vulkan specification field for field (a struct written by the driver that is declared
// only in part carries trailing padding at least as large as the rest).
#pragma once
#include <cstddef>
#include <cstdint>

namespace glm::vk {

// Dispatchable handles are pointers, non-dispatchable ones 64-bit integers on every 64-bit platform.
using Instance = struct InstanceT*;
using PhysicalDevice = struct PhysicalDeviceT*;
using Device = struct DeviceT*;
using Queue = struct QueueT*;
using CommandBuffer = struct CommandBufferT*;
using Buffer = uint64_t;
using DeviceMemory = uint64_t;
using ShaderModule = uint64_t;
using Pipeline = uint64_t;
using PipelineLayout = uint64_t;
using DescriptorSetLayout = uint64_t;
using DescriptorPool = uint64_t;
using DescriptorSet = uint64_t;
using CommandPool = uint64_t;
using Fence = uint64_t;
using DeviceSize = uint64_t;
using Bool32 = uint32_t;
using Flags = uint32_t;
using Result = int32_t;

constexpr Result kSuccess = 0;
constexpr Result kIncomplete = 5;
constexpr Result kErrorOutOfHostMemory = -1;
constexpr Result kErrorOutOfDeviceMemory = -2;
constexpr Result kErrorDeviceLost = -4;
constexpr Result kErrorOutOfPoolMemory = -1000069000;
constexpr Result kErrorFragmentedPool = -12;

constexpr uint32_t makeApiVersion(uint32_t major, uint32_t minor) { return (major << 22) | (minor << 12); }

enum StructureType : int32_t {
  kApplicationInfo = 0,
  kInstanceCreateInfo = 1,
  kDeviceQueueCreateInfo = 2,
  kDeviceCreateInfo = 3,
  kSubmitInfo = 4,
  kMemoryAllocateInfo = 5,
  kFenceCreateInfo = 8,
  kBufferCreateInfo = 12,
  kShaderModuleCreateInfo = 16,
  kPipelineShaderStageCreateInfo = 18,
  kComputePipelineCreateInfo = 29,
  kPipelineLayoutCreateInfo = 30,
  kDescriptorSetLayoutCreateInfo = 32,
  kDescriptorPoolCreateInfo = 33,
  kDescriptorSetAllocateInfo = 34,
  kWriteDescriptorSet = 35,
  kCommandPoolCreateInfo = 39,
  kCommandBufferAllocateInfo = 40,
  kCommandBufferBeginInfo = 42,
  kMemoryBarrier = 46,
  kPhysicalDeviceFeatures2 = 1000059000,
  kPhysicalDeviceProperties2 = 1000059001,
  kPhysicalDevice16BitStorageFeatures = 1000083000,
  kPhysicalDeviceSubgroupProperties = 1000094000,
};

enum PhysicalDeviceType : int32_t { kTypeOther = 0, kTypeIntegratedGpu = 1, kTypeDiscreteGpu = 2, kTypeVirtualGpu = 3, kTypeCpu = 4 };

constexpr Flags kQueueCompute = 0x2;
constexpr Flags kMemoryDeviceLocal = 0x1, kMemoryHostVisible = 0x2, kMemoryHostCoherent = 0x4, kMemoryHostCached = 0x8;
constexpr Flags kHeapDeviceLocal = 0x1;
constexpr Flags kBufferTransferSrc = 0x1, kBufferTransferDst = 0x2, kBufferStorage = 0x20;
constexpr int32_t kDescriptorStorageBuffer = 7;
constexpr Flags kStageCompute = 0x20;
constexpr int32_t kBindPointCompute = 1;
constexpr Flags kCommandPoolResetBuffer = 0x2;
constexpr Flags kCommandBufferOneTimeSubmit = 0x1;
constexpr Flags kPipelineStageComputeShader = 0x800, kPipelineStageTransfer = 0x1000, kPipelineStageHost = 0x4000;
constexpr Flags kAccessShaderRead = 0x20, kAccessShaderWrite = 0x40, kAccessTransferRead = 0x800, kAccessTransferWrite = 0x1000,
                kAccessHostRead = 0x2000, kAccessHostWrite = 0x4000;

struct ApplicationInfo {
  StructureType sType;
  const void* pNext;
  const char* pApplicationName;
  uint32_t applicationVersion;
  const char* pEngineName;
  uint32_t engineVersion;
  uint32_t apiVersion;
};

struct InstanceCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  const ApplicationInfo* pApplicationInfo;
  uint32_t enabledLayerCount;
  const char* const* ppEnabledLayerNames;
  uint32_t enabledExtensionCount;
  const char* const* ppEnabledExtensionNames;
};

// VkPhysicalDeviceLimits up to the fields read here; the padding covers the rest of the struct and of
// VkPhysicalDeviceSparseProperties after it.
struct PhysicalDeviceLimits {
  uint32_t maxImageDimension1D, maxImageDimension2D, maxImageDimension3D, maxImageDimensionCube, maxImageArrayLayers;
  uint32_t maxTexelBufferElements, maxUniformBufferRange, maxStorageBufferRange, maxPushConstantsSize;
  uint32_t maxMemoryAllocationCount, maxSamplerAllocationCount;
  DeviceSize bufferImageGranularity, sparseAddressSpaceSize;
  uint32_t maxBoundDescriptorSets, maxPerStageDescriptorSamplers, maxPerStageDescriptorUniformBuffers, maxPerStageDescriptorStorageBuffers;
  uint32_t maxPerStageDescriptorSampledImages, maxPerStageDescriptorStorageImages, maxPerStageDescriptorInputAttachments, maxPerStageResources;
  uint32_t maxDescriptorSetSamplers, maxDescriptorSetUniformBuffers, maxDescriptorSetUniformBuffersDynamic, maxDescriptorSetStorageBuffers;
  uint32_t maxDescriptorSetStorageBuffersDynamic, maxDescriptorSetSampledImages, maxDescriptorSetStorageImages, maxDescriptorSetInputAttachments;
  uint32_t maxVertexInputAttributes, maxVertexInputBindings, maxVertexInputAttributeOffset, maxVertexInputBindingStride, maxVertexOutputComponents;
  uint32_t maxTessellationGenerationLevel, maxTessellationPatchSize, maxTessellationControlPerVertexInputComponents;
  uint32_t maxTessellationControlPerVertexOutputComponents, maxTessellationControlPerPatchOutputComponents;
  uint32_t maxTessellationControlTotalOutputComponents, maxTessellationEvaluationInputComponents, maxTessellationEvaluationOutputComponents;
  uint32_t maxGeometryShaderInvocations, maxGeometryInputComponents, maxGeometryOutputComponents, maxGeometryOutputVertices;
  uint32_t maxGeometryTotalOutputComponents, maxFragmentInputComponents, maxFragmentOutputAttachments, maxFragmentDualSrcAttachments;
  uint32_t maxFragmentCombinedOutputResources;
  uint32_t maxComputeSharedMemorySize;
  uint32_t maxComputeWorkGroupCount[3];
  uint32_t maxComputeWorkGroupInvocations;
  uint32_t maxComputeWorkGroupSize[3];
  uint32_t subPixelPrecisionBits, subTexelPrecisionBits, mipmapPrecisionBits, maxDrawIndexedIndexValue, maxDrawIndirectCount;
  float maxSamplerLodBias, maxSamplerAnisotropy;
  uint32_t maxViewports, maxViewportDimensions[2];
  float viewportBoundsRange[2];
  uint32_t viewportSubPixelBits;
  size_t minMemoryMapAlignment;
  DeviceSize minTexelBufferOffsetAlignment, minUniformBufferOffsetAlignment, minStorageBufferOffsetAlignment;
  uint8_t rest[512];
};

struct PhysicalDeviceProperties {
  uint32_t apiVersion;
  uint32_t driverVersion;
  uint32_t vendorID;
  uint32_t deviceID;
  PhysicalDeviceType deviceType;
  char deviceName[256];
  uint8_t pipelineCacheUUID[16];
  PhysicalDeviceLimits limits;
};

struct PhysicalDeviceProperties2 {
  StructureType sType;
  void* pNext;
  PhysicalDeviceProperties properties;
};

struct PhysicalDeviceSubgroupProperties {
  StructureType sType;
  void* pNext;
  uint32_t subgroupSize;
  Flags supportedStages;
  Flags supportedOperations;
  Bool32 quadOperationsInAllStages;
};

// VkPhysicalDeviceFeatures: 55 booleans, none of which this backend needs.
struct PhysicalDeviceFeatures {
  Bool32 flags[55];
};

struct PhysicalDeviceFeatures2 {
  StructureType sType;
  void* pNext;
  PhysicalDeviceFeatures features;
};

struct PhysicalDevice16BitStorageFeatures {
  StructureType sType;
  void* pNext;
  Bool32 storageBuffer16BitAccess;
  Bool32 uniformAndStorageBuffer16BitAccess;
  Bool32 storagePushConstant16;
  Bool32 storageInputOutput16;
};

struct QueueFamilyProperties {
  Flags queueFlags;
  uint32_t queueCount;
  uint32_t timestampValidBits;
  uint32_t minImageTransferGranularity[3];
};

struct MemoryType {
  Flags propertyFlags;
  uint32_t heapIndex;
};

struct MemoryHeap {
  DeviceSize size;
  Flags flags;
};

struct PhysicalDeviceMemoryProperties {
  uint32_t memoryTypeCount;
  MemoryType memoryTypes[32];
  uint32_t memoryHeapCount;
  MemoryHeap memoryHeaps[16];
};

struct DeviceQueueCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  uint32_t queueFamilyIndex;
  uint32_t queueCount;
  const float* pQueuePriorities;
};

struct DeviceCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  uint32_t queueCreateInfoCount;
  const DeviceQueueCreateInfo* pQueueCreateInfos;
  uint32_t enabledLayerCount;
  const char* const* ppEnabledLayerNames;
  uint32_t enabledExtensionCount;
  const char* const* ppEnabledExtensionNames;
  const PhysicalDeviceFeatures* pEnabledFeatures;
};

struct BufferCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  DeviceSize size;
  Flags usage;
  int32_t sharingMode;
  uint32_t queueFamilyIndexCount;
  const uint32_t* pQueueFamilyIndices;
};

struct MemoryRequirements {
  DeviceSize size;
  DeviceSize alignment;
  uint32_t memoryTypeBits;
};

struct MemoryAllocateInfo {
  StructureType sType;
  const void* pNext;
  DeviceSize allocationSize;
  uint32_t memoryTypeIndex;
};

struct ShaderModuleCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  size_t codeSize;
  const uint32_t* pCode;
};

struct DescriptorSetLayoutBinding {
  uint32_t binding;
  int32_t descriptorType;
  uint32_t descriptorCount;
  Flags stageFlags;
  const void* pImmutableSamplers;
};

struct DescriptorSetLayoutCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  uint32_t bindingCount;
  const DescriptorSetLayoutBinding* pBindings;
};

struct PushConstantRange {
  Flags stageFlags;
  uint32_t offset;
  uint32_t size;
};

struct PipelineLayoutCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  uint32_t setLayoutCount;
  const DescriptorSetLayout* pSetLayouts;
  uint32_t pushConstantRangeCount;
  const PushConstantRange* pPushConstantRanges;
};

struct SpecializationMapEntry {
  uint32_t constantID;
  uint32_t offset;
  size_t size;
};

struct SpecializationInfo {
  uint32_t mapEntryCount;
  const SpecializationMapEntry* pMapEntries;
  size_t dataSize;
  const void* pData;
};

struct PipelineShaderStageCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  Flags stage;
  ShaderModule module;
  const char* pName;
  const SpecializationInfo* pSpecializationInfo;
};

struct ComputePipelineCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  PipelineShaderStageCreateInfo stage;
  PipelineLayout layout;
  Pipeline basePipelineHandle;
  int32_t basePipelineIndex;
};

struct DescriptorPoolSize {
  int32_t type;
  uint32_t descriptorCount;
};

struct DescriptorPoolCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  uint32_t maxSets;
  uint32_t poolSizeCount;
  const DescriptorPoolSize* pPoolSizes;
};

struct DescriptorSetAllocateInfo {
  StructureType sType;
  const void* pNext;
  DescriptorPool descriptorPool;
  uint32_t descriptorSetCount;
  const DescriptorSetLayout* pSetLayouts;
};

struct DescriptorBufferInfo {
  Buffer buffer;
  DeviceSize offset;
  DeviceSize range;
};

struct WriteDescriptorSet {
  StructureType sType;
  const void* pNext;
  DescriptorSet dstSet;
  uint32_t dstBinding;
  uint32_t dstArrayElement;
  uint32_t descriptorCount;
  int32_t descriptorType;
  const void* pImageInfo;
  const DescriptorBufferInfo* pBufferInfo;
  const void* pTexelBufferView;
};

struct CommandPoolCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  uint32_t queueFamilyIndex;
};

struct CommandBufferAllocateInfo {
  StructureType sType;
  const void* pNext;
  CommandPool commandPool;
  int32_t level;
  uint32_t commandBufferCount;
};

struct CommandBufferBeginInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
  const void* pInheritanceInfo;
};

struct MemoryBarrier {
  StructureType sType;
  const void* pNext;
  Flags srcAccessMask;
  Flags dstAccessMask;
};

struct BufferCopy {
  DeviceSize srcOffset;
  DeviceSize dstOffset;
  DeviceSize size;
};

struct SubmitInfo {
  StructureType sType;
  const void* pNext;
  uint32_t waitSemaphoreCount;
  const uint64_t* pWaitSemaphores;
  const Flags* pWaitDstStageMask;
  uint32_t commandBufferCount;
  const CommandBuffer* pCommandBuffers;
  uint32_t signalSemaphoreCount;
  const uint64_t* pSignalSemaphores;
};

struct FenceCreateInfo {
  StructureType sType;
  const void* pNext;
  Flags flags;
};

// Entry points (the allocator argument, always null here, is `const void*`).
using PFN_GetInstanceProcAddr = void* (*)(Instance, const char*);
using PFN_GetDeviceProcAddr = void* (*)(Device, const char*);
using PFN_CreateInstance = Result (*)(const InstanceCreateInfo*, const void*, Instance*);
using PFN_DestroyInstance = void (*)(Instance, const void*);
using PFN_EnumeratePhysicalDevices = Result (*)(Instance, uint32_t*, PhysicalDevice*);
using PFN_GetPhysicalDeviceProperties2 = void (*)(PhysicalDevice, PhysicalDeviceProperties2*);
using PFN_GetPhysicalDeviceFeatures2 = void (*)(PhysicalDevice, PhysicalDeviceFeatures2*);
using PFN_GetPhysicalDeviceMemoryProperties = void (*)(PhysicalDevice, PhysicalDeviceMemoryProperties*);
using PFN_GetPhysicalDeviceQueueFamilyProperties = void (*)(PhysicalDevice, uint32_t*, QueueFamilyProperties*);
using PFN_CreateDevice = Result (*)(PhysicalDevice, const DeviceCreateInfo*, const void*, Device*);
using PFN_DestroyDevice = void (*)(Device, const void*);
using PFN_GetDeviceQueue = void (*)(Device, uint32_t, uint32_t, Queue*);
using PFN_CreateBuffer = Result (*)(Device, const BufferCreateInfo*, const void*, Buffer*);
using PFN_DestroyBuffer = void (*)(Device, Buffer, const void*);
using PFN_GetBufferMemoryRequirements = void (*)(Device, Buffer, MemoryRequirements*);
using PFN_AllocateMemory = Result (*)(Device, const MemoryAllocateInfo*, const void*, DeviceMemory*);
using PFN_FreeMemory = void (*)(Device, DeviceMemory, const void*);
using PFN_BindBufferMemory = Result (*)(Device, Buffer, DeviceMemory, DeviceSize);
using PFN_MapMemory = Result (*)(Device, DeviceMemory, DeviceSize, DeviceSize, Flags, void**);
using PFN_UnmapMemory = void (*)(Device, DeviceMemory);
using PFN_CreateShaderModule = Result (*)(Device, const ShaderModuleCreateInfo*, const void*, ShaderModule*);
using PFN_DestroyShaderModule = void (*)(Device, ShaderModule, const void*);
using PFN_CreateDescriptorSetLayout = Result (*)(Device, const DescriptorSetLayoutCreateInfo*, const void*, DescriptorSetLayout*);
using PFN_DestroyDescriptorSetLayout = void (*)(Device, DescriptorSetLayout, const void*);
using PFN_CreatePipelineLayout = Result (*)(Device, const PipelineLayoutCreateInfo*, const void*, PipelineLayout*);
using PFN_DestroyPipelineLayout = void (*)(Device, PipelineLayout, const void*);
using PFN_CreateComputePipelines = Result (*)(Device, uint64_t, uint32_t, const ComputePipelineCreateInfo*, const void*, Pipeline*);
using PFN_DestroyPipeline = void (*)(Device, Pipeline, const void*);
using PFN_CreateDescriptorPool = Result (*)(Device, const DescriptorPoolCreateInfo*, const void*, DescriptorPool*);
using PFN_DestroyDescriptorPool = void (*)(Device, DescriptorPool, const void*);
using PFN_ResetDescriptorPool = Result (*)(Device, DescriptorPool, Flags);
using PFN_AllocateDescriptorSets = Result (*)(Device, const DescriptorSetAllocateInfo*, DescriptorSet*);
using PFN_UpdateDescriptorSets = void (*)(Device, uint32_t, const WriteDescriptorSet*, uint32_t, const void*);
using PFN_CreateCommandPool = Result (*)(Device, const CommandPoolCreateInfo*, const void*, CommandPool*);
using PFN_DestroyCommandPool = void (*)(Device, CommandPool, const void*);
using PFN_AllocateCommandBuffers = Result (*)(Device, const CommandBufferAllocateInfo*, CommandBuffer*);
using PFN_BeginCommandBuffer = Result (*)(CommandBuffer, const CommandBufferBeginInfo*);
using PFN_EndCommandBuffer = Result (*)(CommandBuffer);
using PFN_ResetCommandBuffer = Result (*)(CommandBuffer, Flags);
using PFN_CmdBindPipeline = void (*)(CommandBuffer, int32_t, Pipeline);
using PFN_CmdBindDescriptorSets = void (*)(CommandBuffer, int32_t, PipelineLayout, uint32_t, uint32_t, const DescriptorSet*, uint32_t, const uint32_t*);
using PFN_CmdPushConstants = void (*)(CommandBuffer, PipelineLayout, Flags, uint32_t, uint32_t, const void*);
using PFN_CmdDispatch = void (*)(CommandBuffer, uint32_t, uint32_t, uint32_t);
using PFN_CmdPipelineBarrier = void (*)(CommandBuffer, Flags, Flags, Flags, uint32_t, const MemoryBarrier*, uint32_t, const void*, uint32_t, const void*);
using PFN_CmdCopyBuffer = void (*)(CommandBuffer, Buffer, Buffer, uint32_t, const BufferCopy*);
using PFN_QueueSubmit = Result (*)(Queue, uint32_t, const SubmitInfo*, Fence);
using PFN_CreateFence = Result (*)(Device, const FenceCreateInfo*, const void*, Fence*);
using PFN_DestroyFence = void (*)(Device, Fence, const void*);
using PFN_WaitForFences = Result (*)(Device, uint32_t, const Fence*, Bool32, uint64_t);
using PFN_ResetFences = Result (*)(Device, uint32_t, const Fence*);
using PFN_DeviceWaitIdle = Result (*)(Device);

}  // namespace glm::vk
