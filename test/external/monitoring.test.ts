/**
 * The alert rules and the Prometheus configuration of the demo API (deploy/prometheus) through Debian's
 * promtool: the rules check, their unit tests pass (each alert fires where it should and not before), a
 * changed threshold and a broken expression fail, and every metric the rules name is one that a running
 * gateway and model server export.
 * @needs prometheus (promtool)
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGateway, createServer } from '../../server/index.js';
import { FixedGenerator } from '../fixed-generator.js';
import { removeDir, runProgram, tempDir } from '../helpers.js';

const DIR = join('deploy', 'prometheus');
const RULES = readFileSync(join(DIR, 'alerts.yml'), 'utf8');
const promtool = (...args: string[]) => runProgram('promtool', args);

beforeAll(() => {
  if (promtool('--version').status !== 0) throw new Error('promtool (Debian prometheus) is required for this test');
});

/** Runs `edit` on a copy of deploy/prometheus in a temporary folder. */
async function inCopy<T>(edit: (dir: string) => T): Promise<T> {
  const dir = await tempDir();
  try {
    for (const f of ['alerts.yml', 'alerts.test.yml', 'prometheus.yml']) copyFileSync(join(DIR, f), join(dir, f));
    return edit(dir);
  } finally {
    await removeDir(dir);
  }
}

it('the rules check and pass their unit tests', () => {
  const check = promtool('check', 'rules', join(DIR, 'alerts.yml'));
  expect(check.stdout).toContain('SUCCESS: 9 rules found');
  const tests = promtool('test', 'rules', join(DIR, 'alerts.test.yml'));
  expect(tests.stdout + tests.stderr).toContain('SUCCESS');
  expect(tests.status).toBe(0);  // every alert's runbook is a heading of the docs
  for (const [, page, anchor] of RULES.matchAll(/runbook: (docs\/[\w-]+\.md)#([\w-]+)/g)) expect(readFileSync(page!, 'utf8')).toMatch(new RegExp(`^#+ ${anchor}$`, 'im'));
});

it('a changed threshold fails the unit tests, a broken expression fails the check', async () => {
  await inCopy((dir) => {
    writeFileSync(join(dir, 'alerts.yml'), RULES.replace('> 0.05', '> 0.5'));
    const r = promtool('test', 'rules', join(dir, 'alerts.test.yml'));
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('GatewayErrorRate');
    writeFileSync(join(dir, 'alerts.yml'), RULES.replace('min(glm_dllama_gateway_upstreams_healthy)', 'min(glm_dllama_gateway_upstreams_healthy'));
    const check = promtool('check', 'rules', join(dir, 'alerts.yml'));
    expect(check.status).not.toBe(0);
    expect(check.stdout + check.stderr).toMatch(/UpstreamDown|parse error/);
  });
});

it('the Prometheus configuration checks (with its key files present)', async () => {
  await inCopy((dir) => {
    const config = readFileSync(join(dir, 'prometheus.yml'), 'utf8');
    for (const key of ['glm-dllama-upstream-key', 'glm-dllama-metrics-key']) writeFileSync(join(dir, key), 'k\n');
    writeFileSync(join(dir, 'prometheus.yml'), config.replaceAll('/etc/prometheus/', `${dir}/`));
    const r = promtool('check', 'config', join(dir, 'prometheus.yml'));
    expect(r.stdout + r.stderr).toContain('SUCCESS: 9 rules found');
    expect(r.status).toBe(0);
  });
});

it('every metric the rules name is exported by a gateway or a model server', async () => {
  const server = await createServer({ generator: new FixedGenerator('x'), rateLimit: false, processMetrics: false });
  const upstream = await server.listen(0);
  const gateway = await createGateway({ upstreams: [upstream], rateLimit: false, metricsKey: 'm' });
  try {
    const url = await gateway.listen(0);
    await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
    const exported = (await (await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer m' } })).text()) + (await (await fetch(`${upstream}/metrics`)).text());
    const named = [...new Set([...RULES.matchAll(/\bglm_dllama_\w+/g)].map((m) => m[0]))];
    expect(named.length).toBeGreaterThanOrEqual(8);
    const missing = named.filter((name) => !new RegExp(`^${name}[{ ]`, 'm').test(exported));
    expect(missing).toEqual([]);
  } finally {
    await gateway.close();
    await server.close();
  }
});
