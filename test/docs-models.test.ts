/**
 * The model download tables' data (docs/models.md, models/README.md): every registry model and weight type,
 * with the figures and CDN addresses of its published manifest where there is one; a bad manifest is an
 * error naming the file and the field.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { modelDownloads } from '../scripts/docs-data.js';
import { buildManifest, manifestText } from '../pipeline/manifest.js';
import { removeDir, tempDir } from './helpers.js';

let dir: string;

beforeEach(async () => {
  dir = await tempDir();
  copyFileSync(join('models', 'registry.yaml'), join(dir, 'registry.yaml'));
  writeFileSync(join(dir, 'downloads.yaml'), 'bucket: my-models\nregion: fra1\nprefix: releases\n');
});

afterEach(() => removeDir(dir));

function publish(model: string, quant: string, text: string): void {
  mkdirSync(join(dir, 'published', model, quant), { recursive: true });
  writeFileSync(join(dir, 'published', model, quant, 'manifest.json'), text);
}

test('a row per registry model and weight type, unpublished ones without figures', async () => {
  const { downloads, models } = await modelDownloads(dir);
  expect(downloads).toEqual({ bucket: 'my-models', region: 'fra1', prefix: 'releases' });
  expect(models.map((m) => `${m.model.id} ${m.quant}`)).toEqual(['glm-4-9b-0414 q40', 'glm-4-9b-0414 q80', 'glm-4-32b-0414 q40', 'glm-4-32b-0414 q80', 'glm-4.5-air q40', 'intellect-3 q40']);
  expect(models.every((m) => m.manifest === undefined && m.files.length === 0)).toBe(true);
});

test("a published manifest gives the row its figures and each file's CDN address", async () => {
  const files = [
    { name: 'model.m', size: 7_400_000_000, sha256: 'a'.repeat(64) },
    { name: 'tokenizer.t', size: 7_000_000, sha256: 'b'.repeat(64) },
  ];
  publish('glm-4-9b-0414', 'q40', manifestText(buildManifest({ model: 'glm-4-9b-0414', quant: 'q40', converterVersion: '0.1.0', perplexity: 8.25, kld: 0.012 }, files)));
  const row = (await modelDownloads(dir)).models.find((m) => m.model.id === 'glm-4-9b-0414' && m.quant === 'q40')!;
  expect(row.manifest).toMatchObject({ perplexity: 8.25, kld: 0.012, totalSize: 7_407_000_000 });
  expect(row.files).toEqual([
    { name: 'model.m', size: 7_400_000_000, sha256: 'a'.repeat(64), url: 'https://my-models.fra1.cdn.digitaloceanspaces.com/releases/glm-4-9b-0414/q40/model.m' },
    { name: 'tokenizer.t', size: 7_000_000, sha256: 'b'.repeat(64), url: 'https://my-models.fra1.cdn.digitaloceanspaces.com/releases/glm-4-9b-0414/q40/tokenizer.t' },
  ]);
});

test('a bad manifest or downloads file names the file and the field', async () => {
  publish('glm-4.5-air', 'q40', JSON.stringify({ manifestVersion: 1, model: 'glm-4.5-air', quant: 'q40', totalSize: 1, files: [{ name: 'model.m', size: 1, sha256: 'xyz' }] }));
  await expect(modelDownloads(dir)).rejects.toThrow(/published\/glm-4\.5-air\/q40\/manifest\.json: field files\.0\.sha256 must match pattern/);
  writeFileSync(join(dir, 'downloads.yaml'), 'bucket: my-models\nprefix: releases\n');
  await expect(modelDownloads(dir)).rejects.toThrow(/downloads\.yaml: field \(root\) must have required property 'region'/);
});
