/**
 * A local actions cache service speaking the v1 protocol of @actions/cache (the one GitHub Enterprise Server
 * runs): look up by keys and version, reserve, upload chunks by Content-Range, commit, download. Lookup
 * follows the documented order: each key exact, then as a prefix (newest first).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Entry {
  id: number;
  key: string;
  version: string;
  data: Buffer;
  committed: boolean;
  created: number;
}

export interface CacheServer {
  /** ACTIONS_CACHE_URL for the runner environment. */
  url: string;
  entries: () => { key: string; size: number }[];
  close(): Promise<void>;
}

export async function startCacheServer(token: string): Promise<CacheServer> {
  const entries: Entry[] = [];
  let base = '';
  const server: Server = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://localhost');
      const json = (status: number, value?: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(value === undefined ? '' : JSON.stringify(value));
      };
      const download = /^\/download\/(\d+)$/.exec(url.pathname);
      if (download) {
        const e = entries.find((x) => x.id === Number(download[1]) && x.committed);
        if (!e) return json(404);
        res.writeHead(200, { 'content-length': e.data.length, 'content-type': 'application/octet-stream' });
        return res.end(e.data);
      }
      if (req.headers.authorization !== `Bearer ${token}`) return json(401, { message: 'unauthorized' });
      const path = url.pathname.replace(/^\/_apis\/artifactcache\//, '');
      if (path === 'cache' && req.method === 'GET') {
        const keys = (url.searchParams.get('keys') ?? '').split(',');
        const version = url.searchParams.get('version');
        const usable = entries.filter((e) => e.committed && e.version === version).sort((a, b) => b.created - a.created);
        for (const key of keys) {
          const hit = usable.find((e) => e.key === key) ?? usable.find((e) => e.key.startsWith(key));
          if (hit) return json(200, { cacheKey: hit.key, scope: 'refs/heads/main', archiveLocation: `${base}/download/${hit.id}` });
        }
        return json(204);
      }
      if (path === 'caches' && req.method === 'POST') {
        const r = JSON.parse(body.toString()) as { key: string; version: string };
        if (entries.some((e) => e.key === r.key && e.version === r.version)) return json(409, { message: 'cache already exists' });
        const e: Entry = { id: entries.length + 1, key: r.key, version: r.version, data: Buffer.alloc(0), committed: false, created: entries.length };
        entries.push(e);
        return json(201, { cacheId: e.id });
      }
      const one = /^caches\/(\d+)$/.exec(path);
      const e = one ? entries.find((x) => x.id === Number(one[1])) : undefined;
      if (e && req.method === 'PATCH') {
        const start = Number(/^bytes (\d+)-/.exec(req.headers['content-range'] ?? '')?.[1] ?? NaN);
        if (!Number.isInteger(start)) return json(400, { message: 'bad content-range' });
        const grown = Buffer.alloc(Math.max(e.data.length, start + body.length));
        e.data.copy(grown);
        body.copy(grown, start);
        e.data = grown;
        return json(204);
      }
      if (e && req.method === 'POST') {
        const { size } = JSON.parse(body.toString()) as { size: number };
        if (size !== e.data.length) return json(400, { message: `size ${size} != uploaded ${e.data.length}` });
        e.committed = true;
        return json(204);
      }
      return json(404, { message: 'not found' });
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${base}/`,
    entries: () => entries.filter((e) => e.committed).map((e) => ({ key: e.key, size: e.data.length })),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
