#!/usr/bin/env bash
# One prepared check for a machine with a real GPU (docs/gpu.md): prints the Vulkan devices, then runs
# the Vulkan op and forward-pass tests on the first GPU (or on the device given as $1, e.g. vulkan:1).
# Then bench:gpu: prefill and decode tokens/s on the GPU next to the CPU and next to llama.cpp's Vulkan
# and CUDA builds on the same weights. Needs a built checkout (npm ci). About 5 minutes on an H100.
set -euo pipefail
cd "$(dirname "$0")/.."
device="${1:-vulkan}"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv; fi
if command -v vulkaninfo >/dev/null; then vulkaninfo --summary 2>/dev/null | sed -n '/^Devices:/,$p'; fi
./build/Release/glm-engine devices
GLM_ENGINE_TEST_DEVICE="$device" NODE_OPTIONS=--experimental-vm-modules npx jest -c jest.external.config.js test/external/vulkan-ops.test.ts test/external/vulkan-forward.test.ts
npm run bench:gpu -- --device "$device"
