{
  "variables": {
    "engine_sources": [
      "engine/src/quant.cpp", "engine/src/quant-avx2.cpp", "engine/src/model.cpp", "engine/src/thread-pool.cpp",
      "engine/src/session.cpp", "engine/src/mtp.cpp", "engine/src/cpu/kernels.cpp", "engine/src/cpu/kernels-avx2.cpp", "engine/src/cpu/kernels-vnni.cpp", "engine/src/cpu/kernels-neon.cpp",
      "engine/src/graph/blocks.cpp", "engine/src/graph/glm.cpp", "engine/src/graph/glm4.cpp", "engine/src/graph/glm4moe.cpp", "engine/src/graph/graph.cpp",
      "engine/src/bench.cpp", "engine/src/metrics.cpp", "engine/src/activation-stats.cpp", "engine/src/device.cpp",
      "engine/src/vulkan/context.cpp", "engine/src/vulkan/kernels.cpp", "engine/src/vulkan/blocks.cpp",
      "engine/src/net/crypto.cpp", "engine/src/net/socket.cpp", "engine/src/net/protocol.cpp", "engine/src/net/slice.cpp",
      "engine/src/net/cluster.cpp", "engine/src/net/worker.cpp"
    ]
  },
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-ffp-contract=off"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3", "-ffp-contract=off"]
    },
    "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/fp:precise"] } }
  },
  "targets": [
    {
      "target_name": "engine_core",
      "type": "static_library",
      "sources": ["<@(engine_sources)"],
      "cflags": ["-fPIC"]
    },
    {
      "target_name": "glm_engine",
      "dependencies": ["engine_core"],
      "sources": ["engine/src/addon.cpp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
      "libraries": ["-ldl"]
    },
    {
      "target_name": "glm-engine",
      "type": "executable",
      "dependencies": ["engine_core"],
      "sources": ["engine/src/main.cpp"],
      "ldflags": ["-pthread"],
      "libraries": ["-ldl"]
    },
    {
      "target_name": "glm-vulkan-ops",
      "type": "executable",
      "dependencies": ["engine_core"],
      "sources": ["engine/test/vulkan-ops.cpp"],
      "ldflags": ["-pthread"],
      "libraries": ["-ldl"]
    }
  ]
}
