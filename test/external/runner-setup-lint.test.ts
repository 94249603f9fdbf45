/**
 * Runner provisioning lint: shellcheck over every shell script of the repository and cloud-init's own schema
 * check of the user-data files. Needs Debian's shellcheck and cloud-init (.ci/run installs them); it fails,
 * naming the program, where they are missing.
 * @needs shellcheck, cloud-init
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, runProgram as run, tempDir } from '../helpers.js';

const SCRIPT = 'runner-setup/install-runner.sh';
const CLOUD_INIT = 'runner-setup/cloud-init';

/** Every *.sh of the repository (build outputs and dependencies aside), and the CI entry point. */
function shellScripts(dir = '.'): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return ['node_modules', '.git', 'build', 'dist'].includes(entry.name) ? [] : shellScripts(path);
    return entry.name.endsWith('.sh') ? [path] : [];
  });
}

describe('shellcheck', () => {
  const scripts = [...shellScripts(), '.ci/run'];

  test('finds the scripts', () => {
    expect(scripts).toContain(SCRIPT);
  });

  test.each(scripts)('%s has no findings', (script) => {
    const r = run('shellcheck', ['--format=gcc', script]);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  test('reports a bad script', async () => {
    const dir = await tempDir();
    try {
      const bad = join(dir, 'bad.sh');
      writeFileSync(bad, '#!/usr/bin/env bash\nfor f in $(ls *.txt); do rm $f; done\n');
      const r = run('shellcheck', ['--format=gcc', bad]);
      expect(r.status).not.toBe(0);
      expect(r.stdout).toMatch(/SC2045|SC2086/);
    } finally {
      await removeDir(dir);
    }
  });
});

describe('cloud-init user-data', () => {
  const files = readdirSync(CLOUD_INIT).map((f) => join(CLOUD_INIT, f));

  test('a CPU and a GPU file', () => {
    expect(files.sort()).toEqual([join(CLOUD_INIT, 'cpu-droplet.yaml'), join(CLOUD_INIT, 'gpu-droplet.yaml')]);
  });

  test.each(files)('%s passes cloud-init schema', (file) => {
    const r = run('cloud-init', ['schema', '--config-file', file]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Valid cloud-config');
  });

  test.each(files)('%s holds no token and leaves registration to SSH', (file) => {
    const text = readFileSync(file, 'utf8');
    expect(text).not.toMatch(/gh[pousr]_[A-Za-z0-9]{20,}|github_pat_|\bA[A-Z0-9]{28}\b|RUNNER_TOKEN=|--token(?!-stdin)/);
    expect(text).toContain('install-runner.sh, --skip-register');
  });

  test('the GPU file installs the driver and CUDA from NVIDIA and reboots', () => {
    const text = readFileSync(join(CLOUD_INIT, 'gpu-droplet.yaml'), 'utf8');
    expect(text).toMatch(/cuda-keyring_1\.1-1_all\.deb[\s\S]*nvidia-open, cuda-toolkit-12-8[\s\S]*power_state:\n {2}mode: reboot/);
  });

  test('a broken file fails', async () => {
    const dir = await tempDir();
    try {
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, readFileSync(files[0]!, 'utf8').replace('packages:\n  - git\n  - curl\n  - ca-certificates', 'packages: 3'));
      const r = run('cloud-init', ['schema', '--config-file', bad]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain("packages: 3 is not of type 'array'");
    } finally {
      await removeDir(dir);
    }
  });
});

