// Part of `npm run test:external`: the engine on 64-bit ARM. Cross-compiles glm-engine for aarch64 (NEON kernels),
// runs it under qemu-user on the fixture models, and compares its log-probs with the x86 build's, and
// its NEON path with its portable path. Needs g++-aarch64-linux-gnu and qemu-user (.ci/run installs
// them); it is not part of `npm test`, which needs nothing beyond Node and a C++ toolchain.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const binding = readFileSync(join(root, 'binding.gyp'), 'utf8');
// Every engine source once (the glm-vulkan-ops target lists some of them again).
const sources = [...new Set([...binding.matchAll(/"(engine\/src\/[^"]+\.cpp)"/g)].map((m) => m[1]))].filter((s) => !s.endsWith('addon.cpp'));
const work = mkdtempSync(join(tmpdir(), 'glm-dllama-arm-'));
let passed = 0;
let failed = 0;

function need(command) {
  if (spawnSync(command, ['--version'], { encoding: 'utf8' }).status !== 0) {
    console.error(`test:arm needs ${command} (Debian: apt-get install g++-aarch64-linux-gnu qemu-user)`);
    process.exit(1);
  }
}

function logprobs(engine, model, tokens, env = {}) {
  const [command, ...prefix] = engine;
  // --device cpu: the CPU kernels are what is compared (and a static binary must not dlopen a Vulkan loader)
  const out = execFileSync(command, [...prefix, 'logprobs', '--model', model, '--tokens', tokens.join(','), '--threads', '2', '--device', 'cpu'], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 1 << 26,
  });
  return JSON.parse(out).positions.map((p) => p.logprobs);
}

function maxDiff(a, b) {
  let worst = 0;
  a.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i][j])))));
  return worst;
}

function check(name, value, bound) {
  const ok = value < bound;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: max |diff| ${value.toExponential(2)} (bound ${bound})`);
  ok ? passed++ : failed++;
}

try {
  need('aarch64-linux-gnu-g++');
  need('qemu-aarch64');
  const arm = join(work, 'glm-engine-aarch64');
  execFileSync('aarch64-linux-gnu-g++', ['-O2', '-std=c++17', '-ffp-contract=off', '-pthread', '-static', ...sources.map((s) => join(root, s)), '-o', arm], {
    stdio: 'inherit',
  });
  const qemu = ['qemu-aarch64', arm];
  const x86 = [join(root, 'build', 'Release', 'glm-engine')];
  const cli = join(root, 'dist', 'cli', 'glm-dllama.js');
  const tokens = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 500);
  for (const arch of ['glm4moe', 'glm4', 'chatglm']) {
    const checkpoint = join(work, arch);
    execFileSync(process.execPath, [cli, 'fixture', '--arch', arch, '--out', checkpoint], { stdio: 'ignore' });
    // f32: only summation orders differ. q40/q80: the same, but a float difference can move one activation
    // across a q80 rounding boundary and shift later positions by ~0.01 (seen once, glm4 q40); a wrong
    // kernel is off by whole nats.
    for (const [weights, bound] of [['f32', 1e-4], ['q40', 0.1], ['q80', 0.1]]) {
      const model = join(work, `${arch}.${weights}.m`);
      execFileSync(process.execPath, [cli, 'convert', '--model', checkpoint, '--out', model, '--weights', weights, '--no-tokenizer'], { stdio: 'ignore' });
      const neon = logprobs(qemu, model, tokens);
      check(`${arch} ${weights}: aarch64 NEON against x86`, maxDiff(neon, logprobs(x86, model, tokens)), bound);
      check(`${arch} ${weights}: aarch64 NEON against aarch64 portable`, maxDiff(neon, logprobs(qemu, model, tokens, { GLM_ENGINE_KERNELS: 'scalar' })), bound);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
