/**
 * `npm run audit` (scripts/npm-audit.ts): the high and critical advisories read from an `npm audit --json`
 * report (format 2, as npm 10 and 11 write it), judged against the allowlist; a report npm could not make
 * fails; the committed allowlist validates and a bad entry is refused naming its field.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditAdvisories, judgeAudit, readAllowlist, type AllowedAdvisory } from '../scripts/npm-audit.js';
import { removeDir, tempDir } from './helpers.js';

/** A report in npm's shape: a direct package with a high advisory, a critical one two levels down, a moderate one. */
const REPORT = JSON.stringify({
  auditReportVersion: 2,
  vulnerabilities: {
    'tar-fs': {
      name: 'tar-fs',
      severity: 'high',
      isDirect: false,
      via: [{ source: 1101, name: 'tar-fs', dependency: 'tar-fs', title: 'tar-fs can extract outside the specified dir', url: 'https://github.com/advisories/GHSA-8cj5-5rvv-wf4v', severity: 'high', cwe: ['CWE-22'], cvss: { score: 7.5 }, range: '<2.1.2' }],
      effects: ['prebuild-install'],
      range: '<2.1.2',
      nodes: ['node_modules/tar-fs'],
      fixAvailable: true,
    },
    'prebuild-install': { name: 'prebuild-install', severity: 'high', isDirect: true, via: ['tar-fs'], effects: [], range: '*', nodes: ['node_modules/prebuild-install'], fixAvailable: true },
    'form-data': {
      name: 'form-data',
      severity: 'critical',
      isDirect: false,
      via: [{ source: 1102, name: 'form-data', dependency: 'form-data', title: 'form-data uses unsafe random function', url: 'https://github.com/advisories/GHSA-fjxv-7rqg-78g4', severity: 'critical', range: '<2.5.4' }],
      effects: [],
      range: '<2.5.4',
      nodes: ['node_modules/form-data'],
      fixAvailable: true,
    },
    esbuild: {
      name: 'esbuild',
      severity: 'moderate',
      isDirect: false,
      via: [{ source: 1103, name: 'esbuild', title: 'dev server answers any website', url: 'https://github.com/advisories/GHSA-67mh-4wv8-2f99', severity: 'moderate', range: '<=0.24.2' }],
      effects: [],
      range: '<=0.24.2',
      nodes: ['node_modules/esbuild'],
      fixAvailable: false,
    },
  },
  metadata: { vulnerabilities: { info: 0, low: 0, moderate: 1, high: 2, critical: 1, total: 4 } },
});

const entry = (over: Partial<AllowedAdvisory> = {}): AllowedAdvisory => ({ id: 'GHSA-8cj5-5rvv-wf4v', package: 'tar-fs', reason: 'only our own prebuilt archives are extracted', expires: '2027-01-31', ...over });

it('reads the high and critical advisories once each, with their GHSA ids', () => {
  expect(auditAdvisories(REPORT)).toEqual([
    { id: 'GHSA-fjxv-7rqg-78g4', package: 'form-data', severity: 'critical', title: 'form-data uses unsafe random function' },
    { id: 'GHSA-8cj5-5rvv-wf4v', package: 'tar-fs', severity: 'high', title: 'tar-fs can extract outside the specified dir' },
  ]);
  expect(auditAdvisories(JSON.stringify({ auditReportVersion: 2, vulnerabilities: {} }))).toEqual([]);
});

it('blocks what the allowlist does not name, lets through what it does until it expires, and names unused entries', () => {
  const advisories = auditAdvisories(REPORT);
  expect(judgeAudit(advisories, [], '2026-12-08').blocking.map((a) => a.id)).toEqual(['GHSA-fjxv-7rqg-78g4', 'GHSA-8cj5-5rvv-wf4v']);
  const allowed = judgeAudit(advisories, [entry()], '2026-12-08');
  expect(allowed.blocking.map((a) => a.id)).toEqual(['GHSA-fjxv-7rqg-78g4']);
  expect(allowed.allowed.map((a) => a.id)).toEqual(['GHSA-8cj5-5rvv-wf4v']);
  // past its date the entry allows nothing and is itself a failure
  const late = judgeAudit(advisories, [entry()], '2027-02-01');
  expect(late.blocking).toHaveLength(2);
  expect(late.expired).toEqual([entry()]);
  // the same advisory in another package is not covered
  expect(judgeAudit(advisories, [entry({ package: 'tar' })], '2026-12-08').blocking).toHaveLength(2);
  expect(judgeAudit(advisories, [entry({ package: 'tar' })], '2026-12-08').unused).toEqual([entry({ package: 'tar' })]);
});

it('fails when npm audit could not make a report', () => {
  const error = JSON.stringify({ message: '405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk', statusCode: 405 });
  expect(() => auditAdvisories(error)).toThrow('npm audit could not check the dependencies: 405 Method Not Allowed');
  expect(() => auditAdvisories('npm error network ENOTFOUND')).toThrow('npm audit gave no JSON report');
});

it('the committed allowlist validates; an entry without its reason or with a bad date is refused naming the field', async () => {
  expect(Array.isArray(readAllowlist())).toBe(true);
  const dir = await tempDir();
  try {
    const file = join(dir, 'allow.yaml');
    writeFileSync(file, 'advisories:\n  - { id: GHSA-8cj5-5rvv-wf4v, package: tar-fs, expires: 2027-01-31 }\n');
    expect(() => readAllowlist(file)).toThrow(`${file}: field advisories.0 must have required property 'reason'`);
    writeFileSync(file, 'advisories:\n  - { id: GHSA-8cj5-5rvv-wf4v, package: tar-fs, reason: only our own prebuilt archives, expires: "31.01.2027" }\n');
    expect(() => readAllowlist(file)).toThrow('field advisories.0.expires must match pattern');
  } finally {
    await removeDir(dir);
  }
});
