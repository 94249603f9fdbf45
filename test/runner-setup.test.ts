/**
 * Runner provisioning: install-runner.sh's dry-run plan (steps, masking, idempotence on a fake root) and
 * what the cloud-init user-data makes root fetch; needs only bash. The lint of the shell scripts
 * (shellcheck) and cloud-init's schema check of the user-data files need Debian programs and live in
 * test/external/runner-setup-lint.test.ts.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { removeDir, runProgram as run, tempDir } from './helpers.js';

const SCRIPT = 'runner-setup/install-runner.sh';
const CLOUD_INIT = 'runner-setup/cloud-init';
const TOKEN = 'AABCDEFGHIJKLMNOPQRSTUVWXYZ23';
const URL = 'https://github.com/glm-dllama/glm-dllama';

describe('cloud-init user-data pins what root runs', () => {
  test.each(readdirSync(CLOUD_INIT).map((f) => join(CLOUD_INIT, f)))('%s fetches one commit, filled in before use, never a movable tag', (file) => {
    const text = readFileSync(file, 'utf8');
    expect(text).not.toMatch(/--branch|\bv1\b/);
    expect(text).toContain(`echo GLM_DLLAMA_COMMIT | grep -Eqx "[0-9a-f]{40}" && git init --quiet /opt/glm-dllama-setup && git -C /opt/glm-dllama-setup fetch --quiet --depth 1 https://github.com/glm-dllama/glm-dllama.git GLM_DLLAMA_COMMIT && git -C /opt/glm-dllama-setup checkout --quiet FETCH_HEAD`);
    expect(text).toContain('install-runner.sh, --skip-register, --glm-dllama-ref, GLM_DLLAMA_COMMIT]');
  });

  test("the GPU file installs NVIDIA's keyring only when its key has the CUDA repository key's fingerprint", () => {
    const text = readFileSync(join(CLOUD_INIT, 'gpu-droplet.yaml'), 'utf8');
    expect(text).toMatch(/gpg --show-keys --with-colons \/tmp\/cuda-keyring\/usr\/share\/keyrings\/cuda-archive-keyring\.gpg .*= EB693B3035CD5710E231E123A4B469963BF863CC && dpkg -i \/tmp\/cuda-keyring\.deb'\]/);
    expect(text).not.toMatch(/^ {2}- \[dpkg, -i/m);
  });
});

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
        /gpg --show-keys --with-colons \| awk -F: '\/\^fpr\/ \{ print \$10; exit \}'\)" = 6F71F525282841EEDAF851B42F59B5F99B1BE0B4 \] && .*gpg --dearmor --yes -o \/etc\/apt\/keyrings\/nodesource\.gpg\n.*node_24\.x nodistro main.*\n.*apt-get install -y -qq nodejs/,
        /\+ useradd --system --create-home --shell \/bin\/bash glm-runner/,
        // root downloads, checks and runs installdependencies.sh in a folder only root can reach ...
        /\+ download=\$\(mktemp -d -t glm-dllama-runner\.XXXXXXXXXX\)\n\+ curl -fsSL -o \/tmp\/glm-dllama-runner\.X{10}\/actions-runner-linux-x64-2\.336\.0\.tar\.gz https:\/\/github\.com\/actions\/runner\/releases\/download\/v2\.336\.0\/actions-runner-linux-x64-2\.336\.0\.tar\.gz\n/,
        /\+ echo '04cf0be1aff4c3ec3554466c39124ca250e3effd8873bb7e8d68535aa9505d5d {2}\/tmp\/glm-dllama-runner\.X{10}\/actions-runner-linux-x64-2\.336\.0\.tar\.gz' \| sha256sum --check --strict\n/,
        /\+ mkdir (\/tmp\/glm-dllama-runner\.X{10})\/runner && tar -xzf \1\/actions-runner-linux-x64-2\.336\.0\.tar\.gz -C \1\/runner && \1\/runner\/bin\/installdependencies\.sh\n/,
        // ... and the job user unpacks its own folder
        /\+ install -d -o glm-runner -g glm-runner \/opt\/actions-runner\n\+ sudo -u glm-runner -H bash -c 'tar -xzf - -C \/opt\/actions-runner && echo 2\.336\.0 > \/opt\/actions-runner\/\.runner-version' < \/tmp\/glm-dllama-runner\.X{10}\/actions-runner-linux-x64-2\.336\.0\.tar\.gz\n\+ rm -rf \/tmp\/glm-dllama-runner\.X{10}\n/,
        /\$nrconf\{override_rc\}->\{qr\(\^actions\\\.runner\\\..\+\\\.service\$\)\} = 0;' > \/etc\/needrestart\/conf\.d\/glm-dllama-runner\.conf/,
        /'Before=network-pre\.target' 'Wants=network-pre\.target' .*'ExecStart=\/usr\/sbin\/iptables -I OUTPUT -d 169\.254\.169\.254 -m owner --uid-owner glm-runner -j REJECT'.* > \/etc\/systemd\/system\/glm-dllama-block-metadata\.service\n\+ systemctl daemon-reload && systemctl enable glm-dllama-block-metadata\.service && systemctl restart glm-dllama-block-metadata\.service/,
        /git -C \/home\/glm-runner\/glm-dllama fetch --quiet --depth 1 https:\/\/github\.com\/glm-dllama\/glm-dllama\.git v1 && .*checkout --quiet FETCH_HEAD.*\n.*npm ci && test -x build\/Release\/glm-engine/,
        /\+ ACTIONS_RUNNER_INPUT_TOKEN=\*\*\* sudo --preserve-env=ACTIONS_RUNNER_INPUT_TOKEN -u glm-runner -H bash -c 'cd \/opt\/actions-runner && \.\/config\.sh --unattended --url https:\/\/github\.com\/glm-dllama\/glm-dllama --name droplet-1 --work _work --replace --labels cpu-32g/,
        // the unit is written by root, not by svc.sh from the job user's folder, and needs the metadata block
        new RegExp(
          String.raw`\+ printf '%s\\n' '\[Unit\]' 'Description=GitHub Actions runner droplet-1' 'After=network-online\.target glm-dllama-block-metadata\.service' 'Wants=network-online\.target' 'Requires=glm-dllama-block-metadata\.service' '\[Service\]' 'ExecStart=/opt/actions-runner/bin/runsvc\.sh' 'User=glm-runner' 'WorkingDirectory=/opt/actions-runner' .*'Restart=${mode === 'ephemeral' ? 'on-failure' : 'always'}' .* > /etc/systemd/system/actions\.runner\.droplet-1\.service\n\+ systemctl daemon-reload && systemctl enable --now actions\.runner\.droplet-1\.service\n`,
        ),
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
      expect(out).not.toMatch(/[ /]svc\.sh|systemctl stop/); // no svc.sh as root; a fresh machine: no service to stop
      expect(out).toContain(`done: runner droplet-1 (${mode})`);
    } finally {
      await removeDir(root);
    }
  });

  test('is ephemeral unless told --persistent', async () => {
    const root = await tempDir();
    try {
      const out = plan(['--labels', 'cpu-32g'], root);
      expect(out.split('\n').find((l) => l.includes('./config.sh'))).toContain(' --ephemeral');
      expect(out).toContain("'Restart=on-failure'");
      expect(out).toContain('done: runner droplet-1 (ephemeral)');
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
      put('/etc/systemd/system/glm-dllama-block-metadata.service', '[Unit]\nBefore=network-pre.target\n');
      put('/home/glm-runner/glm-dllama/build/Release/glm-engine');
      put('/home/glm-runner/glm-dllama/.glm-dllama-ref', 'v1\n');
      put('/opt/actions-runner/.runner', '{}');
      put('/etc/systemd/system/actions.runner.droplet-1.service', '[Unit]\n');
      const done = plan(['--labels', 'gpu'], root);
      expect(done.split('\n').filter((l) => l.startsWith('+ '))).toEqual([expect.stringMatching(/^\+ apt-get update -qq && .*apt-get install/)]);
      expect(done).toContain('= service actions.runner.droplet-1.service is installed');

      // an older runner is replaced with its service stopped around the unpack
      put('/opt/actions-runner/.runner-version', '2.335.0\n');
      const upgrade = plan(['--labels', 'gpu'], root);
      expect(upgrade).toMatch(
        /sha256sum --check.*\n.*installdependencies\.sh\n\+ systemctl stop actions\.runner\.droplet-1\.service\n\+ install -d .*\n\+ sudo -u glm-runner -H bash -c 'tar -xzf - .*\n\+ systemctl start actions\.runner\.droplet-1\.service\n/,
      );

      // a metadata unit from before the boot ordering is rewritten
      put('/opt/actions-runner/.runner-version', '2.336.0\n');
      put('/etc/systemd/system/glm-dllama-block-metadata.service', '[Unit]\nAfter=network-pre.target\n');
      expect(plan(['--labels', 'gpu'], root)).toContain("'Before=network-pre.target' 'Wants=network-pre.target'");
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
