/**
 * @needs clang (with libclang-rt-14-dev: libFuzzer and the sanitizers' runtime)
 *
 * The libFuzzer harnesses (fuzz/native/*.cpp, ASan + UBSan): fuzz/native/build.sh builds them from
 * binding.gyp's engine sources, every committed crash input (fuzz/regressions/native-<target>--*) is
 * replayed through its harness, and every harness fuzzes its seed corpus for a short fixed time with a
 * fixed seed. Any crash, sanitizer report, property violation or hang fails the test. Where clang is
 * missing the build fails, naming it (.ci/run installs it).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../engine/native.js';
import { removeDir, tempDir } from '../helpers.js';

const root = packageRoot();
const TARGETS = readdirSync(join(root, 'fuzz', 'native')).filter((f) => f.endsWith('.cpp')).map((f) => f.slice(0, -4));
const SECONDS = 20;
const dictOf = (target: string) => join(root, 'fuzz', 'dict', `${target === 'model-loader' ? 'model' : target}.dict`);

beforeAll(() => {
  const build = spawnSync('bash', [join(root, 'fuzz', 'native', 'build.sh')], { cwd: root, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`fuzz/native/build.sh failed (needs clang and libclang-rt-14-dev):\n${build.stderr.slice(-4000)}`);
}, 600_000);

test('there is a harness for the loader, the frames, both sides of the handshake and the quantizers', () => {
  expect(TARGETS.sort()).toEqual(expect.arrayContaining(['frames', 'model-loader', 'quant', 'root-handshake', 'worker-handshake']));
});

test.each(readdirSync(join(root, 'fuzz', 'regressions')).filter((f) => f.startsWith('native-')))('replays %s clean', (file) => {
  const target = file.slice('native-'.length, file.indexOf('--'));
  const r = spawnSync(join(root, 'build', 'fuzz', target), [join(root, 'fuzz', 'regressions', file)], { encoding: 'utf8' });
  expect(r.stderr).not.toMatch(/runtime error:|AddressSanitizer|property violated|deadly signal/);
  expect(r.status).toBe(0);
});

test.each(TARGETS)(`native:%s fuzzes ${SECONDS} s without a finding`, async (target) => {
  const work = await tempDir(`glm-dllama-fuzz-${target}-`);
  try {
    const r = spawnSync(
      join(root, 'build', 'fuzz', target),
      [work, join(root, 'fuzz', 'corpus', `native-${target}`), `-dict=${dictOf(target)}`, `-max_total_time=${SECONDS}`, '-seed=20261203', '-max_len=65536',
        '-rss_limit_mb=2048', '-timeout=10', `-artifact_prefix=${work}/`],
      { encoding: 'utf8', timeout: (SECONDS + 60) * 1000 },
    );
    const done = /#(\d+)\s+DONE\s+cov: (\d+)/.exec(r.stderr);
    if (r.status !== 0 || !done) throw new Error(`native:${target} found something (exit ${r.status}):\n${r.stderr.slice(-6000)}`);
    expect(Number(done[1])).toBeGreaterThan(100);
    expect(Number(done[2])).toBeGreaterThan(50);
  } finally {
    await removeDir(work);
  }
}, (SECONDS + 90) * 1000);
