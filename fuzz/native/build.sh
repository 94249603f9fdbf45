#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/native/*.cpp) into build/fuzz/, with AddressSanitizer and
# UndefinedBehaviorSanitizer, from the engine sources binding.gyp lists (the addon's and the CLI's
# entry points left out). Needs clang and its runtime (Debian: clang, libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
CXX=${CXX:-$(command -v clang++ || command -v clang++-14)}
out=build/fuzz
mkdir -p "$out/obj"
flags=(-std=c++17 -g -O1 -fexceptions -ffp-contract=off -fno-sanitize-recover=undefined -pthread)
mapfile -t sources < <(node -e 'const g = JSON.parse(require("fs").readFileSync("binding.gyp", "utf8")); console.log(g.variables.engine_sources.join("\n"))')
objects=()
pids=()
for src in "${sources[@]}"; do
  obj="$out/obj/$(echo "${src%.cpp}" | tr / _).o"
  objects+=("$obj")
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find engine/src -name '*.h' -newer "$obj" -print -quit)" ]; then
    # clang ignores `#pragma GCC target`: the SIMD files' features become -m flags (they run only where the CPU has them).
    features=$(sed -n 's/^#pragma GCC target("\(.*\)")/\1/p' "$src" | tr , '\n' | sed 's/^/-m/' | tr '\n' ' ')
    # shellcheck disable=SC2086
    "$CXX" "${flags[@]}" $features -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj" &
    pids+=($!)
    if [ ${#pids[@]} -ge "${JOBS:-2}" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
for harness in fuzz/native/*.cpp; do
  name=$(basename "${harness%.cpp}")
  "$CXX" "${flags[@]}" -fsanitize=fuzzer,address,undefined -Iengine/src "$harness" "${objects[@]}" -o "$out/$name"
  echo "built $out/$name"
done
