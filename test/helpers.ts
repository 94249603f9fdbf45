/** Shared test utilities: temporary folders, fixture checkpoints, and surgery on safetensors headers. */
import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createServer as createNetServer } from 'node:net';
import { convert } from '../converter/convert.js';
import { writeFixture, type FixtureOptions } from '../converter/fixture.js';
import { INDEX_FILE } from '../converter/safetensors.js';

export async function tempDir(prefix = 'glm-dllama-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function fixture(dir: string, options: Omit<FixtureOptions, 'outDir'>): Promise<string> {
  const outDir = join(dir, `${options.arch}-${options.size ?? 'tiny'}-${options.dtype ?? 'bf16'}-${options.seed ?? 1}`);
  await writeFixture({ ...options, outDir });
  return outDir;
}

type Header = Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;

/** Rewrites a shard's JSON header in place, keeping its data section as it is. */
export async function editShardHeader(file: string, edit: (header: Header) => void): Promise<void> {
  const bytes = await readFile(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Header;
  edit(header);
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  await writeFile(file, Buffer.concat([prefix, json, bytes.subarray(8 + length)]));
}

/** The shard file that holds `tensor`, from the checkpoint's index. */
export async function shardOf(modelDir: string, tensor: string): Promise<string> {
  const index = JSON.parse(await readFile(join(modelDir, INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> };
  const shard = index.weight_map[tensor];
  if (!shard) throw new Error(`fixture has no tensor ${tensor}`);
  return join(modelDir, shard);
}

export async function editJson(file: string, edit: (json: Record<string, unknown>) => void): Promise<void> {
  const json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(json);
  await writeFile(file, JSON.stringify(json, null, 2));
}

/** Runs the built CLI (dist/, built by `npm test`'s pretest) and returns its exit code and output. */
export function cli(...args: string[]): { status: number; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [join(process.cwd(), 'dist', 'cli', 'glm-dllama.js'), ...args], { encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  return { status: run.status ?? -1, stdout: run.stdout, stderr: run.stderr };
}

export async function filesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** The tiny glm4moe fixture converted to f32 and q40 in `dir` (m.f32.m and m.q40.m, each with its .t). */
export async function f32AndQ40(dir: string): Promise<{ f32: string; q40: string }> {
  const checkpoint = await fixture(dir, { arch: 'glm4moe' });
  const f32 = join(dir, 'm.f32.m');
  const q40 = join(dir, 'm.q40.m');
  await convert({ modelDir: checkpoint, outFile: f32, weights: 'f32' });
  await convert({ modelDir: checkpoint, outFile: q40, weights: 'q40' });
  return { f32, q40 };
}

/** Each architecture's tiny fixture converted to f32 and q40 in `dir`, keyed `<arch>.<weights>`. */
export async function fixtureModels(dir: string, archs: readonly FixtureOptions['arch'][]): Promise<Map<string, string>> {
  const models = new Map<string, string>();
  for (const arch of archs) {
    const checkpoint = await fixture(dir, { arch });
    for (const weights of ['f32', 'q40'] as const) {
      const out = join(dir, `${arch}.${weights}.m`);
      await convert({ modelDir: checkpoint, outFile: out, weights });
      models.set(`${arch}.${weights}`, out);
    }
  }
  return models;
}

/** Runs a program; a program that is not installed is an error naming it (the external tests' packages come from .ci/run). */
export function runProgram(command: string, args: string[], env: Record<string, string> = {}, input?: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, ...env }, input });
  if (r.error) throw new Error(`${command}: ${r.error.message} (install it: .ci/run does)`);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A loopback port that was free a moment ago (for programs that take a port, not 0). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}
