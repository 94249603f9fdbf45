/**
 * Runner provisioning: install-runner.sh's dry-run plan (steps, masking, idempotence on a fake root); needs
 * only bash. The lint of the shell scripts (shellcheck) and cloud-init's schema check of the user-data files
 * need Debian programs and live in test/external/runner-setup-lint.test.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { removeDir, runProgram as run, tempDir } from './helpers.js';

const SCRIPT = 'runner-setup/install-runner.sh';
const TOKEN = 'AABCDEFGHIJKLMNOPQRSTUVWXYZ23';
const URL = 'https://github.com/glm-dllama/glm-dllama';

describe('install-runner.sh --dry-run', () => {
  function plan(args: string[], root?: string) {
    const r = run('bash', [SCRIPT, '--dry-run', '--url', URL, '--name', 'droplet-1', ...(root ? ['--root', root] : []), ...args], { RUNNER_TOKEN: TOKEN });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return r.stdout;
  }

  test.each([
    ['ephemeral', ['--labels', 'cpu-32g', '--ephemeral']],
    ['persistent', ['--labels', 'cpu-32g', '--persistent']],
  ])('plans every step of a %s runner', async (mode, args) => {
    const root = await tempDir(); // an empty machine
    try {
      const out = plan(args, root);
      const steps = [
        /\+ apt-get update -qq && .*apt-get install -y -qq build-essential g\+\+ make python3 git curl jq ca-certificates gnupg iptables/,
        /nodesource\.gpg.*\n.*node_24\.x nodistro main.*\n.*apt-get install -y -qq nodejs/,
        /\+ useradd --system --create-home --shell \/bin\/bash glm-runner/,
        /\+ curl -fsSL -o \/tmp\/actions-runner-linux-x64-2\.336\.0\.tar\.gz https:\/\/github\.com\/actions\/runner\/releases\/download\/v2\.336\.0\/actions-runner-linux-x64-2\.336\.0\.tar\.gz/,
        /\+ echo '04cf0be1aff4c3ec3554466c39124ca250e3effd8873bb7e8d68535aa9505d5d {2}\/tmp\/actions-runner-linux-x64-2\.336\.0\.tar\.gz' \| sha256sum --check --strict\n\+ tar -xzf/,
        /\$nrconf\{override_rc\}->\{qr\(\^actions\\\.runner\\\..\+\\\.service\$\)\} = 0;' > \/etc\/needrestart\/conf\.d\/glm-dllama-runner\.conf/,
        /'ExecStart=\/usr\/sbin\/iptables -I OUTPUT -d 169\.254\.169\.254 -m owner --uid-owner glm-runner -j REJECT'.* > \/etc\/systemd\/system\/glm-dllama-block-metadata\.service\n\+ systemctl daemon-reload && systemctl enable --now glm-dllama-block-metadata\.service/,
        /git clone --quiet --depth 1 --branch v1 https:\/\/github\.com\/glm-dllama\/glm-dllama\.git .*\n.*npm ci && test -x build\/Release\/glm-engine/,
        /\+ ACTIONS_RUNNER_INPUT_TOKEN=\*\*\* sudo --preserve-env=ACTIONS_RUNNER_INPUT_TOKEN -u glm-runner -H bash -c 'cd \/opt\/actions-runner && \.\/config\.sh --unattended --url https:\/\/github\.com\/glm-dllama\/glm-dllama --name droplet-1 --work _work --replace --labels cpu-32g/,
        /\+ cd \/opt\/actions-runner && \.\/svc\.sh install glm-runner && \.\/svc\.sh start/,
      ];
      let at = 0;
      for (const step of steps) {
        const m = step.exec(out.slice(at));
        expect([String(step), m ? 'found in order' : out]).toEqual([String(step), 'found in order']);
        at += m!.index + m![0].length;
      }
      const config = out.split('\n').find((l) => l.includes('./config.sh'))!;
      expect(config.includes('--ephemeral')).toBe(mode === 'ephemeral');
      expect(out).not.toContain(TOKEN);
      expect(out).toContain(`done: runner droplet-1 (${mode})`);
    } finally {
      await removeDir(root);
    }
  });

  test('a token from stdin is masked too', () => {
    const r = run('bash', [SCRIPT, '--dry-run', '--url', URL, '--token-stdin'], {}, `${TOKEN}\n`);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ACTIONS_RUNNER_INPUT_TOKEN=***');
    expect(r.stdout).not.toContain(TOKEN);
  });

  test('is idempotent: on a machine that has everything, it plans nothing but the package check', async () => {
    const root = await tempDir();
    try {
      const put = (path: string, text = '') => {
        mkdirSync(dirname(join(root, path)), { recursive: true });
        writeFileSync(join(root, path), text);
      };
      put('/etc/passwd', 'root:x:0:0:root:/root:/bin/bash\nglm-runner:x:999:999::/home/glm-runner:/bin/bash\n');
      const partly = plan(['--labels', 'gpu'], root);
      expect(partly).toContain('= user glm-runner exists');
      expect(partly).not.toContain('useradd');
      expect(partly).toContain('./config.sh');

      put('/usr/bin/node');
      put('/opt/actions-runner/.runner-version', '2.336.0\n');
      put('/etc/needrestart/conf.d/glm-dllama-runner.conf');
      put('/etc/systemd/system/glm-dllama-block-metadata.service');
      put('/home/glm-runner/glm-dllama/build/Release/glm-engine');
      put('/home/glm-runner/glm-dllama/.glm-dllama-ref', 'v1\n');
      put('/opt/actions-runner/.runner', '{}');
      put('/opt/actions-runner/.service', 'actions.runner.glm-dllama-glm-dllama.droplet-1.service\n');
      const done = plan(['--labels', 'gpu'], root);
      expect(done.split('\n').filter((l) => l.startsWith('+ '))).toEqual([expect.stringMatching(/^\+ apt-get update -qq && .*apt-get install/)]);
      expect(done).toContain('= service actions.runner.glm-dllama-glm-dllama.droplet-1.service is installed');

      put('/opt/actions-runner/.runner-version', '2.335.0\n'); // an older runner is replaced
      expect(plan(['--labels', 'gpu'], root)).toContain('sha256sum --check');
    } finally {
      await removeDir(root);
    }
  });

  test('--skip-register prepares without a token', () => {
    const r = run('bash', [SCRIPT, '--dry-run', '--skip-register']);
    expect(r.status).toBe(0);
    expect(r.stdout).not.toContain('config.sh');
    expect(r.stdout).toContain('prepared; to register: gh api -X POST repos/OWNER/REPO/actions/runners/registration-token');
  });

  test.each([
    [['--url', URL], {}, 'no registration token'],
    [['--url', 'http://example.com/x'], { RUNNER_TOKEN: TOKEN }, '--url must be https://github.com/OWNER'],
    [['--url', URL, '--labels', 'gpu;reboot'], { RUNNER_TOKEN: TOKEN }, '--labels gpu;reboot'],
    [['--url', URL, '--bogus'], { RUNNER_TOKEN: TOKEN }, 'unknown argument --bogus'],
  ])('refuses %j', (args, env, message) => {
    const r = run('bash', [SCRIPT, '--dry-run', ...args], { RUNNER_TOKEN: '', ...env });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(message);
  });

  test('--root only with --dry-run', () => {
    const r = run('bash', [SCRIPT, '--root', '/tmp', '--skip-register']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('--root is only for --dry-run');
  });
});
