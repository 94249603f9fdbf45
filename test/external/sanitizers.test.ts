/**
 * The security review's triggers against glm-engine built with AddressSanitizer and UBSan (g++
 * -fsanitize=address,undefined into build/asan, from binding.gyp's sources): crafted .m files through
 * `info` and `generate`, and a hostile root (test/fake-root.ts) against a worker. Every case must end
 * in a clean error with no sanitizer report; a normal run must pass cleanly too. Needs g++ with
 * libasan and libubsan (Debian's g++ brings both).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../../converter/convert.js';
import { readModelFile } from '../../converter/model-file.js';
import { packageRoot } from '../../engine/native.js';
import { LoadedModel } from '../../engine/index.js';
import { FakeRoot, Msg, frameHeader } from '../fake-root.js';
import { fixture, removeDir, tempDir } from '../helpers.js';

const root = packageRoot();
const ASAN_ENGINE = join(root, 'build', 'asan', 'glm-engine');
const SECRET = 'a sanitizer test secret of 32 ch';
// Any report aborts the process (no recovery), and the tests also look for the reports' text.
const env = { ...process.env, ASAN_OPTIONS: 'abort_on_error=0:detect_leaks=0', UBSAN_OPTIONS: 'print_stacktrace=1', GLM_ENGINE_SECRET: SECRET };
const REPORT = /AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer/;

let dir: string;
let model: string;
let bytes: Buffer;

beforeAll(async () => {
  const binding = readFileSync(join(root, 'binding.gyp'), 'utf8');
  const sources = [...binding.matchAll(/"(engine\/src\/[^"]+\.cpp)"/g)].map((m) => m[1]!).filter((s) => !s.endsWith('addon.cpp'));
  mkdirSync(join(root, 'build', 'asan'), { recursive: true });
  // Built again only when a file of engine/src is newer than the last build (it takes minutes).
  const built = existsSync(ASAN_ENGINE) ? statSync(ASAN_ENGINE).mtimeMs : 0;
  const stale = readdirSync(join(root, 'engine', 'src'), { recursive: true, encoding: 'utf8' }).some((f) => statSync(join(root, 'engine', 'src', f)).mtimeMs > built);
  if (stale) {
    const build = spawnSync(
      'g++',
      ['-std=c++17', '-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-ffp-contract=off', '-pthread', ...sources, '-o', ASAN_ENGINE],
      { cwd: root, encoding: 'utf8' },
    );
    if (build.status !== 0) throw new Error(`building glm-engine with -fsanitize=address,undefined failed (g++ with libasan and libubsan is needed): ${build.error?.message ?? build.stderr}`);
  }
  dir = await tempDir();
  model = join(dir, 'glm4.f32.m');
  await convert({ modelDir: await fixture(dir, { arch: 'glm4' }), outFile: model, weights: 'f32' });
  bytes = await readFile(model);
}, 1_200_000);
afterAll(() => removeDir(dir));

/** The model's bytes with header keys set to values. */
function withKeys(...pairs: [number, number][]): Buffer {
  const out = Buffer.from(bytes);
  for (const [key, value] of pairs) {
    for (let at = 8; at < out.readInt32LE(4); at += 8) if (out.readInt32LE(at) === key) out.writeInt32LE(value | 0, at + 4);
  }
  return out;
}

it('a normal generation runs clean', () => {
  const r = spawnSync(ASAN_ENGINE, ['generate', '--model', model, '--tokens', '1,2,3', '--max-tokens', '4', '--threads', '2'], { env, encoding: 'utf8' });
  expect(r.stderr).not.toMatch(REPORT);
  expect(r.status).toBe(0);
});

it.each([
  ['n_heads 2^28 + 4', () => withKeys([5, 268435460])],
  ['65537 heads of 65535', () => withKeys([5, 65537], [19, 65535])],
  ['20,000,000 layers', () => withKeys([4, 20_000_000])],
  ['0x7fffffff layers', () => withKeys([4, 0x7fffffff])],
  ['a vocabulary of 2^24', () => withKeys([9, 1 << 24])],
  ['a truncated file', () => bytes.subarray(0, bytes.length - 1)],
  ['a header size of 2^31 - 8', () => {
    const b = Buffer.from(bytes);
    b.writeInt32LE(0x7ffffff8, 4);
    return b;
  }],
])('%s: info and generate refuse it cleanly', async (name, make) => {
  const path = join(dir, `${name.replace(/\W+/g, '-')}.m`);
  await writeFile(path, make());
  for (const args of [['info', '--model', path], ['generate', '--model', path, '--tokens', '1,2,3']]) {
    const r = spawnSync(ASAN_ENGINE, args, { env, encoding: 'utf8' });
    expect(r.stderr).not.toMatch(REPORT);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/glm-engine: error: .*\.m: /);
  }
});

it('a worker survives every hostile root of the review without a sanitizer report', async () => {
  const worker = spawn(ASAN_ENGINE, ['worker', '--host', '127.0.0.1', '--port', '0', '--threads', '1', '--model', model, '--idle-timeout', '5'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  worker.stderr.setEncoding('utf8').on('data', (c: string) => (log += c));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setInterval(() => {
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
        if (m) {
          clearInterval(timer);
          resolve(Number(m[1]));
        } else if (worker.exitCode !== null) {
          clearInterval(timer);
          reject(new Error(`the worker exited: ${log}`));
        }
      }, 20);
    });
    const pairs = bytes.subarray(8, bytes.readInt32LE(4));
    const { dim } = (await readModelFile(model)).header;
    const session = async (headerPairs = pairs) => {
      const r = await FakeRoot.connect(port);
      const refused = await r.handshake(SECRET, { headerPairs });
      if (!refused) await r.ready();
      return { r, refused };
    };
    for (const [pos, n, first, count, rows] of [[0x7fffffff, 1, 0, 1, 1], [0, 1, 0x7fffffff, 1, 1], [0, 1, 1, 0x7fffffff, 1], [0xffffffff, 2, 0, 1, 2]]) {
      const { r } = await session();
      r.forward(pos!, n!, first!, count!, rows!, dim);
      expect(await r.errorMessage()).toMatch(/does not fit the context/);
      await r.closed();
    }
    const vocab = withKeys([9, 1 << 24]);
    const { r: differs, refused } = await session(vocab.subarray(8, vocab.readInt32LE(4)));
    expect(refused).toMatch(/header differs/);
    differs.close();
    for (const [type, length] of [[Msg.RootHello, 1 << 30], [Msg.Error, 1 << 20], [Msg.Ping, 0]]) {
      const r = await FakeRoot.connect(port);
      await r.frame();
      r.socket.write(frameHeader(type!, length!));
      await r.closed();
    }
    const { r: tampered } = await session();
    tampered.send(Msg.Ping, Buffer.alloc(0), Buffer.alloc(16));
    await tampered.closed();
    // And a real root still gets a normal pass.
    await new Promise((r) => setTimeout(r, 200));
    const real = new LoadedModel(model, { threads: 1, contextLength: 16, workers: [`127.0.0.1:${port}`], secret: SECRET, sync: 'f32' });
    expect(real.evaluate([1, 2, 3]).length).toBe(real.vocabSize);
    real.close();
    await new Promise((r) => setTimeout(r, 200));
    expect(worker.exitCode).toBeNull();
    expect(log).not.toMatch(REPORT);
    expect(log).toMatch(/a frame failed authentication/);
  } finally {
    worker.kill('SIGKILL');
  }
}, 120_000);
