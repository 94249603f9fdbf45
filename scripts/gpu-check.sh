#!/usr/bin/env bash
# One prepared check for a machine with a real GPU (docs/gpu.md): prints the Vulkan devices, then runs
# the Vulkan op and forward-pass tests on the first GPU (or on the device given as $1, e.g. vulkan:1).
# Needs a built checkout (npm ci). bench:gpu is not written yet.
set -euo pipefail
cd "$(dirname "$0")/.."
device="${1:-vulkan}"
command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>/dev/null | sed -n '/^Devices:/,$p' || true
./build/Release/glm-engine devices
GLM_ENGINE_TEST_DEVICE="$device" NODE_OPTIONS=--experimental-vm-modules npx jest -c jest.external.config.js test/external/vulkan-ops.test.ts test/external/vulkan-forward.test.ts
