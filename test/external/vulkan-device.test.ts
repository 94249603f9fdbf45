/**
 * Choosing the device and the errors on the way (docs/gpu.md), on a machine with Mesa's lavapipe: the
 * device list, `--device` parsing, lavapipe refused unless GLM_ENGINE_VULKAN_ALLOW_CPU=1, a missing
 * device index, a machine whose loader finds no driver (auto falls back to the CPU silently, vulkan
 * fails), the same errors as JavaScript exceptions from the addon, a device lost mid-run and a device
 * too small for the model (a Vulkan layer built here, vulkan-faults/layer.c, fails vkQueueSubmit from a
 * chosen submission on, as a driver does after a GPU hang, or allocations past a chosen total; it needs
 * the Vulkan headers from libvulkan-dev), and the CLI's --device
 * and --cpu-experts flags.
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../../converter/convert.js';
import { LoadedModel } from '../../engine/index.js';
import { fixture, removeDir, tempDir } from '../helpers.js';

const engine = join(process.cwd(), 'build', 'Release', 'glm-engine');
const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const base = { ...process.env };
  delete base.GLM_ENGINE_VULKAN_ALLOW_CPU;
  const r = spawnSync(engine, args, { encoding: 'utf8', env: { ...base, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

let dir: string;
let model: string;
beforeAll(async () => {
  dir = await tempDir();
  model = join(dir, 'm.q40.m');
  await convert({ modelDir: await fixture(dir, { arch: 'glm4' }), outFile: model, weights: 'q40' });
});
afterAll(async () => removeDir(dir));

const generate = ['generate', '--tokens', '1,2,3', '--max-tokens', '4'];

test('devices lists lavapipe as a CPU-type device with 16-bit storage and its binding limit', () => {
  const r = run(['devices']);
  expect(r.status).toBe(0);
  const { devices } = JSON.parse(r.stdout) as { devices: { index: number; name: string; type: string; storage16: boolean; max_binding_bytes: number }[] };
  const lavapipe = devices.find((d) => d.name.startsWith('llvmpipe'));
  if (!lavapipe) throw new Error(`no lavapipe device (install mesa-vulkan-drivers and libvulkan1): ${r.stdout}`);
  expect(lavapipe).toMatchObject({ type: 'cpu', storage16: true });
  expect(lavapipe.max_binding_bytes).toBeGreaterThan(0);
});

test('lavapipe runs only when named and allowed; the same ids as the CPU', () => {
  const cpu = run([...generate, '--model', model, '--device', 'cpu']);
  expect(cpu.status).toBe(0);
  const refused = run([...generate, '--model', model, '--device', 'vulkan']);
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/no Vulkan GPU with 16-bit storage among llvmpipe.*GLM_ENGINE_VULKAN_ALLOW_CPU=1/);
  const auto = run([...generate, '--model', model]);
  expect(auto).toMatchObject({ status: 0, stderr: '', stdout: cpu.stdout }); // auto passes over lavapipe silently
  const gpu = run([...generate, '--model', model, '--device', 'vulkan:0'], { GLM_ENGINE_VULKAN_ALLOW_CPU: '1' });
  expect(gpu).toMatchObject({ status: 0, stdout: cpu.stdout });
});

test('bad --device values and missing devices are clear errors', () => {
  const bad = run([...generate, '--model', model, '--device', 'gpu']);
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/--device must be cpu, vulkan, vulkan:N or auto, got "gpu"/);
  const missing = run([...generate, '--model', model, '--device', 'vulkan:9'], { GLM_ENGINE_VULKAN_ALLOW_CPU: '1' });
  expect(missing.status).toBe(1);
  expect(missing.stderr).toMatch(/no Vulkan device 9 \(this machine has \d+\)/);
});

test('a loader without drivers: auto runs on the CPU, vulkan fails naming the cause', () => {
  const noDriver = { VK_ICD_FILENAMES: join(dir, 'no-such-icd.json'), VK_DRIVER_FILES: join(dir, 'no-such-icd.json') };
  const auto = run([...generate, '--model', model], noDriver);
  expect(auto.status).toBe(0);
  const vulkan = run([...generate, '--model', model, '--device', 'vulkan'], noDriver);
  expect(vulkan.status).toBe(1);
  expect(vulkan.stderr).toMatch(/glm-engine: error: (cannot create a Vulkan 1\.1 instance|no Vulkan device)/);
});

describe('a device that fails: lost mid-run, or too small', () => {
  let layerEnv: NodeJS.ProcessEnv;
  beforeAll(async () => {
    const library = join(dir, 'libglm-vulkan-faults.so');
    const cc = spawnSync('cc', ['-shared', '-fPIC', '-O1', '-o', library, join(process.cwd(), 'test', 'external', 'vulkan-faults', 'layer.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`cannot build the test layer (needs libvulkan-dev): ${cc.stderr}`);
    const manifest = { file_format_version: '1.0.0', layer: { name: 'VK_LAYER_GLM_faults', type: 'GLOBAL', library_path: library, api_version: '1.3.0',
      implementation_version: '1', description: 'lost device and small memory on demand (GLM_TEST_LOSE_DEVICE_AFTER, GLM_TEST_DEVICE_MEMORY_BYTES)' } };
    await writeFile(join(dir, 'glm-vulkan-faults.json'), JSON.stringify(manifest));
    layerEnv = { GLM_ENGINE_VULKAN_ALLOW_CPU: '1', VK_LAYER_PATH: dir, VK_INSTANCE_LAYERS: 'VK_LAYER_GLM_faults' };
  });

  test('glm-engine: the same tokens while the device lasts, then an error naming the device, never a signal', () => {
    const cpu = run([...generate, '--model', model]);
    expect(cpu.status).toBe(0);
    const lasting = run([...generate, '--model', model, '--device', 'vulkan'], { ...layerEnv, GLM_TEST_LOSE_DEVICE_AFTER: '1000000' });
    expect(lasting).toMatchObject({ status: 0, stdout: cpu.stdout });
    for (const after of ['0', '3', '12']) {
      const lost = run([...generate, '--model', model, '--device', 'vulkan'], { ...layerEnv, GLM_TEST_LOSE_DEVICE_AFTER: after });
      expect(lost.status).toBe(1);
      expect(lost.stderr).toMatch(/glm-engine: error: Vulkan device 0 \(llvmpipe.*\): vkQueueSubmit failed: device lost/);
    }
  });

  test('a model larger than the device: how much it needs, and --cpu-experts suggested', () => {
    const small = run([...generate, '--model', model, '--device', 'vulkan'], { ...layerEnv, GLM_TEST_DEVICE_MEMORY_BYTES: '20000' });
    expect(small.status).toBe(1);
    expect(small.stderr).toMatch(/^glm-engine: error: Vulkan device 0 \(llvmpipe.*\) is out of memory: .+ needs [\d.]+ MiB more .*--cpu-experts all\|N/);
  });

  test('the addon: a JavaScript exception at the pass that meets it, again at the next, and the process goes on', () => {
    // The layer reads its variable at each submission: the model loads and runs a pass on a sound
    // device, then the device is lost two submissions later.
    const script = `
      import { LoadedModel } from ${JSON.stringify(join(process.cwd(), 'dist', 'engine', 'index.js'))};
      const m = new LoadedModel(${JSON.stringify(model)}, { device: 'vulkan' });
      const first = Array.from(m.evaluate([1, 2, 3])).length;
      process.env.GLM_TEST_LOSE_DEVICE_AFTER = '2';
      const errors = [];
      let passes = 0;
      for (let i = 0; i < 20 && errors.length < 2; i++) {
        try { m.evaluate([4]); passes++; } catch (e) { errors.push(e.message); }
      }
      m.close();
      console.log(JSON.stringify({ first, passes, errors }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ...layerEnv } });
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { first: number; passes: number; errors: string[] };
    expect(out.first).toBeGreaterThan(0);
    expect(out.passes).toBeLessThan(20);
    expect(out.errors).toEqual([expect.stringMatching(/^Vulkan device 0 \(llvmpipe.*\): vkQueueSubmit failed: device lost/), expect.any(String)]);
  });
});

test('the addon throws the same errors as JavaScript exceptions', () => {
  expect(() => new LoadedModel(model, { device: 'vulkan:9' })).toThrow(/no Vulkan device 9/);
  expect(() => new LoadedModel(model, { device: 'tpu' })).toThrow(/device must be cpu, vulkan, vulkan:N or auto/);
});

test('the CLI takes --device and --cpu-experts', () => {
  const cli = (device: string, ...extra: string[]) => {
    const r = spawnSync(process.execPath, [join(process.cwd(), 'dist', 'cli', 'glm-dllama.js'), 'logprobs', '--model', model, '--tokens', '1,2,3,4', '--top', '3', '--device', device, ...extra], {
      encoding: 'utf8',
      env: { ...process.env, GLM_ENGINE_VULKAN_ALLOW_CPU: '1' },
    });
    if (r.status !== 0) throw new Error(`glm-dllama logprobs --device ${device} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown;
  };
  // the three most likely ids at each position, the same on both devices
  const top = (v: unknown) => JSON.stringify(v).match(/"id":\d+/g);
  const cpu = top(cli('cpu'));
  expect(cpu).toHaveLength(12);
  expect(top(cli('vulkan:0'))).toEqual(cpu);
  expect(top(cli('vulkan', '--cpu-experts', 'all'))).toEqual(cpu);
});
