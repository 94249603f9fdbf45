#include "device.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <stdexcept>

#include "vulkan/context.h"

namespace glm {

DeviceChoice parseDevice(const std::string& text) {
  DeviceChoice c;
  if (text == "cpu") {
    c.kind = DeviceChoice::Cpu;
  } else if (text == "auto") {
    c.kind = DeviceChoice::Auto;
  } else if (text == "vulkan") {
    c.kind = DeviceChoice::Vulkan;
  } else if (text.rfind("vulkan:", 0) == 0 && text.size() > 7 && text.size() < 12 &&
             text.find_first_not_of("0123456789", 7) == std::string::npos) {
    c.kind = DeviceChoice::Vulkan;
    c.index = std::stoi(text.substr(7));
  } else {
    throw std::invalid_argument("device must be cpu, vulkan, vulkan:N or auto, got \"" + text + "\"");
  }
  return c;
}

int parseCpuExperts(const std::string& text) {
  if (text == "all") return std::numeric_limits<int>::max();
  if (!text.empty() && text.size() < 7 && text.find_first_not_of("0123456789") == std::string::npos) return std::stoi(text);
  throw std::invalid_argument("cpu-experts must be all or a number of MoE layers, got \"" + text + "\"");
}

namespace {
bool cpuDevicesAllowed() {
  const char* allow = std::getenv("GLM_ENGINE_VULKAN_ALLOW_CPU");
  return allow && std::string(allow) == "1";
}

bool usable(const vulkan::DeviceInfo& d, bool allowCpu) { return d.storage16 && (d.gpu || (allowCpu && d.type == "cpu")); }
}  // namespace

int resolveDevice(const DeviceChoice& choice, const std::function<void(const std::string&)>& note) {
  if (choice.kind == DeviceChoice::Cpu) return -1;
  std::vector<vulkan::DeviceInfo> devices;
  try {
    devices = vulkan::listDevices();
  } catch (const vulkan::VulkanError& e) {
    if (choice.kind == DeviceChoice::Vulkan) throw;
    return -1;  // no Vulkan here: the CPU is the only choice, nothing to say
  }
  const bool allowCpu = choice.kind == DeviceChoice::Vulkan && cpuDevicesAllowed();
  if (choice.index >= 0) {
    if (choice.index >= static_cast<int>(devices.size())) {
      throw vulkan::VulkanError("no Vulkan device " + std::to_string(choice.index) + " (this machine has " + std::to_string(devices.size()) + ")");
    }
    const vulkan::DeviceInfo& d = devices[choice.index];
    if (!d.gpu && !allowCpu) {
      throw vulkan::VulkanError("Vulkan device " + std::to_string(d.index) + " (" + d.name + ") is a " + d.type +
                                " device, not a GPU; set GLM_ENGINE_VULKAN_ALLOW_CPU=1 to use it anyway");
    }
    return d.index;  // missing features are reported when the device is opened
  }
  for (const vulkan::DeviceInfo& d : devices) {
    if (usable(d, allowCpu)) return d.index;
  }
  std::string found;
  for (const vulkan::DeviceInfo& d : devices) found += (found.empty() ? "" : ", ") + d.name + " (" + d.type + (d.storage16 ? "" : ", no 16-bit storage") + ")";
  const std::string why = devices.empty() ? "no Vulkan device" : "no Vulkan GPU with 16-bit storage among " + found;
  if (choice.kind == DeviceChoice::Vulkan) {
    throw vulkan::VulkanError(why + (allowCpu ? "" : "; a CPU-type device such as lavapipe needs GLM_ENGINE_VULKAN_ALLOW_CPU=1"));
  }
  // Falling back is news only where a GPU was passed over (one without 16-bit storage).
  if (std::any_of(devices.begin(), devices.end(), [](const vulkan::DeviceInfo& d) { return d.gpu; })) note(why + ": running on the CPU");
  return -1;
}

namespace {
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}
}  // namespace

std::string devicesJson() {
  std::vector<vulkan::DeviceInfo> devices;
  try {
    devices = vulkan::listDevices();
  } catch (const vulkan::VulkanError& e) {
    return "{\"devices\":[],\"error\":" + quoted(e.what()) + "}";
  }
  std::string out = "{\"devices\":[";
  for (size_t i = 0; i < devices.size(); i++) {
    const vulkan::DeviceInfo& d = devices[i];
    out += (i ? "," : "") + std::string("{\"index\":") + std::to_string(d.index) + ",\"name\":" + quoted(d.name) + ",\"type\":" + quoted(d.type) +
           ",\"device_local_bytes\":" + std::to_string(d.deviceLocalBytes) + ",\"storage16\":" + (d.storage16 ? "true" : "false") +
           ",\"api\":\"" + std::to_string(d.apiVersion >> 22) + "." + std::to_string((d.apiVersion >> 12) & 0x3ff) + "." +
           std::to_string(d.apiVersion & 0xfff) + "\",\"max_binding_bytes\":" + std::to_string(d.maxStorageBufferRange) +
           ",\"subgroup\":" + std::to_string(d.subgroupSize) + "}";
  }
  return out + "]}";
}

}  // namespace glm
