// Where the forward pass runs, chosen once from `--device cpu|vulkan|vulkan:N|auto` (the addon's
// `device` option). auto takes the first discrete or integrated GPU with what the shaders need and
// otherwise the CPU, saying so in one line when it passed over a GPU (silently on machines without
// one); a CPU-type Vulkan device (Mesa's lavapipe) is used only when named (`vulkan` or `vulkan:N`)
// with GLM_ENGINE_VULKAN_ALLOW_CPU=1, as the tests do.
#pragma once
#include <functional>
#include <string>

namespace glm {

// Where a session runs: a Vulkan device index (-1: the CPU) and, on a GPU, how many MoE layers (from
// the first) keep their routed experts in system memory and run them on the CPU (--cpu-experts).
struct Placement {
  int device = -1;
  int cpuExpertLayers = 0;
};

// --cpu-experts: "all" or a number of MoE layers; throws std::invalid_argument.
int parseCpuExperts(const std::string& text);

struct DeviceChoice {
  enum Kind { Cpu, Vulkan, Auto } kind = Auto;
  int index = -1;  // vulkan:N; -1 for the first suitable device
};

// Throws std::invalid_argument naming the accepted forms.
DeviceChoice parseDevice(const std::string& text);

// The Vulkan device index to run on, or -1 for the CPU. Throws vulkan::VulkanError when a Vulkan
// device was asked for and cannot be had; `note` receives the line explaining an auto fallback.
int resolveDevice(const DeviceChoice& choice, const std::function<void(const std::string&)>& note);

// The Vulkan devices as a JSON array (index, name, type, memory, 16-bit storage, limits), or
// {"error": ...} when there is no loader.
std::string devicesJson();

}  // namespace glm
