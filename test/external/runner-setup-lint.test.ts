/**
 * Provisioning lint: shellcheck over every shell script of the repository, cloud-init's own schema check
 * of the user-data files (the runners' and the model servers'), and systemd-analyze over the model
 * server's unit. Needs Debian's shellcheck, cloud-init and systemd (.ci/run installs them); it fails,
 * naming the program, where they are missing.
 * @needs shellcheck, cloud-init, systemd-analyze
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, runProgram as run, tempDir } from '../helpers.js';

const SCRIPT = 'runner-setup/install-runner.sh';
const CLOUD_INIT = 'runner-setup/cloud-init';
const DEPLOY_CLOUD_INIT = 'deploy/cloud-init';
const MODEL_SERVER_SCRIPT = 'deploy/model-server/install-model-server.sh';
const MODEL_SERVER_UNIT = 'deploy/model-server/glm-dllama-serve.service';

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
    expect(scripts).toContain(MODEL_SERVER_SCRIPT);
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


describe('model server provisioning', () => {
  const files = readdirSync(DEPLOY_CLOUD_INIT).map((f) => join(DEPLOY_CLOUD_INIT, f));

  test('a CPU and a GPU file', () => {
    expect(files.sort()).toEqual([join(DEPLOY_CLOUD_INIT, 'model-server-cpu.yaml'), join(DEPLOY_CLOUD_INIT, 'model-server-gpu.yaml')]);
  });

  test.each(files)('%s passes cloud-init schema, holds no key, and installs the service from a pinned commit', (file) => {
    const r = run('cloud-init', ['schema', '--config-file', file]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Valid cloud-config');
    const text = readFileSync(file, 'utf8');
    expect(text).not.toMatch(/GLM_DLLAMA_API_KEYS=|UPSTREAM_KEY=|gh[pousr]_[A-Za-z0-9]{20,}/);
    expect(text).toContain('grep -Eqx "[0-9a-f]{40}"');
    expect(text).toMatch(file.endsWith('gpu.yaml') ? /nvidia-open\][\s\S]*install-model-server\.sh, --gpu\][\s\S]*mode: reboot/ : /install-model-server\.sh\]\n/);
  });

  test('the unit passes systemd-analyze verify and runs serve with the key check and the env file', () => {
    const r = run('systemd-analyze', ['verify', MODEL_SERVER_UNIT]);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
    const unit = readFileSync(MODEL_SERVER_UNIT, 'utf8');
    expect(unit).toMatch(/^EnvironmentFile=\/etc\/glm-dllama\/serve\.env$/m);
    expect(unit).toMatch(/^ExecStartPre=.*test -n "\$GLM_DLLAMA_API_KEYS"/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/glm-dllama\/dist\/cli\/glm-dllama\.js serve .*--host \$\{GLM_DLLAMA_HOST\}/m);
    expect(unit).toMatch(/^User=glm-dllama$/m);
  });

  test('a broken unit is reported with its line', async () => {
    const dir = await tempDir();
    try {
      const bad = join(dir, 'glm-dllama-serve.service');
      writeFileSync(bad, readFileSync(MODEL_SERVER_UNIT, 'utf8').replace('Restart=on-failure', 'Restart=sometimes'));
      const r = run('systemd-analyze', ['verify', bad]);
      expect(r.stderr).toMatch(/glm-dllama-serve\.service:\d+: Failed to parse service restart specifier/);
    } finally {
      await removeDir(dir);
    }
  });
});
