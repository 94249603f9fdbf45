/**
 * A root and a worker in two network namespaces joined by a veth pair, as on two machines: the pair
 * reproduces a single-node generation across the link, and taking the link down mid-generation (a
 * pulled cable: no reset, no close) stops the root with a clear error within its timeout. Needs root
 * and iproute2 (`ip netns`), as CI has; it fails, naming what is missing, where they are not.
 * @needs root and iproute2 (network namespaces)
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { convert } from '../../converter/convert.js';
import { ENGINE } from '../../engine/worker-process.js';
import { fixture, removeDir, tempDir } from '../helpers.js';

const suffix = String(process.pid);
const [rootNs, workerNs] = [`glm-root-${suffix}`, `glm-worker-${suffix}`];
const [rootIf, workerIf] = [`glmr${suffix}`.slice(0, 15), `glmw${suffix}`.slice(0, 15)];
const [rootIp, workerIp] = ['10.231.0.1', '10.231.0.2'];

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`this test needs root and iproute2 to build network namespaces: \`ip ${args.join(' ')}\` failed: ${r.error?.message ?? r.stderr.trim()}`);
  }
}

let dir: string;
let model: string;
let worker: ReturnType<typeof spawn> | undefined;
let workerAddress: string;

beforeAll(async () => {
  dir = await tempDir();
  model = join(dir, 'glm4moe.f32.m');
  await convert({ modelDir: await fixture(dir, { arch: 'glm4moe' }), outFile: model, weights: 'f32' });
  ip('netns', 'add', rootNs);
  ip('netns', 'add', workerNs);
  ip('link', 'add', rootIf, 'type', 'veth', 'peer', 'name', workerIf);
  ip('link', 'set', rootIf, 'netns', rootNs);
  ip('link', 'set', workerIf, 'netns', workerNs);
  ip('-n', rootNs, 'addr', 'add', `${rootIp}/24`, 'dev', rootIf);
  ip('-n', workerNs, 'addr', 'add', `${workerIp}/24`, 'dev', workerIf);
  for (const [ns, dev] of [[rootNs, rootIf], [workerNs, workerIf]] as const) {
    ip('-n', ns, 'link', 'set', dev, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  worker = spawn('ip', ['netns', 'exec', workerNs, ENGINE, 'worker', '--host', workerIp, '--port', '0', '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  workerAddress = await new Promise<string>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`the worker did not start: ${log}`)), 10_000);
    worker!.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      log += chunk;
      const port = /listening on [\d.]+:(\d+)/.exec(log)?.[1];
      if (port) {
        clearTimeout(timer);
        resolve(`${workerIp}:${port}`);
      }
    });
  });
});

afterAll(async () => {
  worker?.kill('SIGKILL');
  spawnSync('ip', ['netns', 'del', rootNs]);
  spawnSync('ip', ['netns', 'del', workerNs]);
  await removeDir(dir);
});

const inRootNs = (args: string[]) => spawnSync('ip', ['netns', 'exec', rootNs, ENGINE, ...args], { encoding: 'utf8' });

it('a root and a worker in two namespaces reproduce a single-node generation over the veth pair', () => {
  const generate = ['generate', '--model', model, '--tokens', '5,42,7,300,11', '--max-tokens', '12', '--threads', '1'];
  const single = inRootNs(generate);
  const pair = inRootNs([...generate, '--workers', workerAddress, '--sync', 'f32']);
  expect(pair.stderr).toBe('');
  expect(pair.status).toBe(0);
  expect(pair.stdout).toBe(single.stdout);
});

it('a link taken down mid-generation stops the root within its timeout', async () => {
  // A long run of short decodes, so that the link goes down while tokens are flowing.
  const root = spawn('ip', ['netns', 'exec', rootNs, ENGINE, 'bench', '--model', model, '--prompt-tokens', '8', '--gen-tokens', '200', '--repeat', '100000', '--threads', '1', '--workers', workerAddress, '--net-timeout', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  root.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  await new Promise((r) => setTimeout(r, 1_000));
  expect(root.exitCode).toBeNull(); // still generating
  ip('-n', workerNs, 'link', 'set', workerIf, 'down');
  const downAt = Date.now();
  const code = await new Promise<number | null>((resolve) => root.on('exit', resolve));
  expect(code).toBe(1);
  expect(stderr).toMatch(new RegExp(`worker ${workerAddress.replace(/\./g, '\\.')}: no progress within 2 s`));
  expect(Date.now() - downAt).toBeLessThan(6_000);
});
