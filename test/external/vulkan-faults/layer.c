// A Vulkan layer for test/external/vulkan-device.test.ts that makes a sound device fail as real ones do.
// It passes every call through, except that
// - vkQueueSubmit answers VK_ERROR_DEVICE_LOST from submission GLM_TEST_LOSE_DEVICE_AFTER + 1 on, as a
//   driver does once a GPU has hung or been unplugged;
// - vkAllocateMemory answers VK_ERROR_OUT_OF_DEVICE_MEMORY once the allocations would pass
//   GLM_TEST_DEVICE_MEMORY_BYTES in all (frees are not counted back: a device that small, briefly).
// The loader puts it in front of the real driver when VK_LAYER_PATH names the folder of its manifest
// and VK_INSTANCE_LAYERS names VK_LAYER_GLM_faults.
#include <stdlib.h>
#include <string.h>
#include <vulkan/vk_layer.h>
#include <vulkan/vulkan.h>

#define EXPORT __attribute__((visibility("default")))

static PFN_vkGetInstanceProcAddr nextInstanceProc;
static PFN_vkGetDeviceProcAddr nextDeviceProc;
static PFN_vkQueueSubmit nextQueueSubmit;
static PFN_vkAllocateMemory nextAllocateMemory;
static long submissions;
static unsigned long long allocated;

static VKAPI_ATTR VkResult VKAPI_CALL queueSubmit(VkQueue queue, uint32_t count, const VkSubmitInfo* submits, VkFence fence) {
  const char* after = getenv("GLM_TEST_LOSE_DEVICE_AFTER");
  if (after && ++submissions > atol(after)) return VK_ERROR_DEVICE_LOST;
  return nextQueueSubmit(queue, count, submits, fence);
}

static VKAPI_ATTR VkResult VKAPI_CALL allocateMemory(VkDevice device, const VkMemoryAllocateInfo* info, const VkAllocationCallbacks* allocator,
                                                     VkDeviceMemory* memory) {
  const char* limit = getenv("GLM_TEST_DEVICE_MEMORY_BYTES");
  if (limit && allocated + info->allocationSize > strtoull(limit, NULL, 10)) return VK_ERROR_OUT_OF_DEVICE_MEMORY;
  allocated += info->allocationSize;
  return nextAllocateMemory(device, info, allocator, memory);
}

static VKAPI_ATTR VkResult VKAPI_CALL createInstance(const VkInstanceCreateInfo* info, const VkAllocationCallbacks* allocator, VkInstance* instance) {
  VkLayerInstanceCreateInfo* link = (VkLayerInstanceCreateInfo*)info->pNext;
  while (link && !(link->sType == VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO && link->function == VK_LAYER_LINK_INFO)) {
    link = (VkLayerInstanceCreateInfo*)link->pNext;
  }
  if (!link) return VK_ERROR_INITIALIZATION_FAILED;
  nextInstanceProc = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
  link->u.pLayerInfo = link->u.pLayerInfo->pNext;
  PFN_vkCreateInstance next = (PFN_vkCreateInstance)nextInstanceProc(VK_NULL_HANDLE, "vkCreateInstance");
  return next(info, allocator, instance);
}

static VKAPI_ATTR VkResult VKAPI_CALL createDevice(VkPhysicalDevice physical, const VkDeviceCreateInfo* info, const VkAllocationCallbacks* allocator,
                                                   VkDevice* device) {
  VkLayerDeviceCreateInfo* link = (VkLayerDeviceCreateInfo*)info->pNext;
  while (link && !(link->sType == VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO && link->function == VK_LAYER_LINK_INFO)) {
    link = (VkLayerDeviceCreateInfo*)link->pNext;
  }
  if (!link) return VK_ERROR_INITIALIZATION_FAILED;
  PFN_vkGetInstanceProcAddr instanceProc = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
  nextDeviceProc = link->u.pLayerInfo->pfnNextGetDeviceProcAddr;
  link->u.pLayerInfo = link->u.pLayerInfo->pNext;
  PFN_vkCreateDevice next = (PFN_vkCreateDevice)instanceProc(VK_NULL_HANDLE, "vkCreateDevice");
  VkResult created = next(physical, info, allocator, device);
  if (created == VK_SUCCESS) {
    nextQueueSubmit = (PFN_vkQueueSubmit)nextDeviceProc(*device, "vkQueueSubmit");
    nextAllocateMemory = (PFN_vkAllocateMemory)nextDeviceProc(*device, "vkAllocateMemory");
  }
  return created;
}

static VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL getDeviceProcAddr(VkDevice device, const char* name);

static VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL getInstanceProcAddr(VkInstance instance, const char* name) {
  if (!strcmp(name, "vkCreateInstance")) return (PFN_vkVoidFunction)createInstance;
  if (!strcmp(name, "vkCreateDevice")) return (PFN_vkVoidFunction)createDevice;
  if (!strcmp(name, "vkGetInstanceProcAddr")) return (PFN_vkVoidFunction)getInstanceProcAddr;
  if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)getDeviceProcAddr;
  if (!strcmp(name, "vkQueueSubmit")) return (PFN_vkVoidFunction)queueSubmit;
  if (!strcmp(name, "vkAllocateMemory")) return (PFN_vkVoidFunction)allocateMemory;
  return nextInstanceProc ? nextInstanceProc(instance, name) : NULL;
}

static VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL getDeviceProcAddr(VkDevice device, const char* name) {
  if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)getDeviceProcAddr;
  if (!strcmp(name, "vkQueueSubmit")) return (PFN_vkVoidFunction)queueSubmit;
  if (!strcmp(name, "vkAllocateMemory")) return (PFN_vkVoidFunction)allocateMemory;
  return nextDeviceProc(device, name);
}

EXPORT VKAPI_ATTR VkResult VKAPI_CALL vkNegotiateLoaderLayerInterfaceVersion(VkNegotiateLayerInterface* version) {
  if (version->loaderLayerInterfaceVersion > 2) version->loaderLayerInterfaceVersion = 2;
  version->pfnGetInstanceProcAddr = getInstanceProcAddr;
  version->pfnGetDeviceProcAddr = getDeviceProcAddr;
  version->pfnGetPhysicalDeviceProcAddr = NULL;
  return VK_SUCCESS;
}
