/**
 * A local stand-in for the Hugging Face Hub, serving one repository from a folder with exactly the
 * endpoints @huggingface/hub calls for a download (recorded in `requests`):
 *   GET /api/models/{repo}/revision/{rev}     model info with the commit sha
 *   GET /api/models/{repo}/tree/{rev}         paginated listing (Link: rel="next"), lfs {oid, size}, git oid
 *   GET /{repo}/resolve/{rev}/{path}          files, with Range; LFS files redirect to /cdn/{oid} as on the hub
 * plus a bearer-token check, a gated mode, and faults: cut the connection after N bytes of a file once,
 * or serve a file with one byte flipped.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile, readdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface LoggedRequest {
  method: string;
  path: string;
  range?: string;
  authorized: boolean;
}

interface RepoFile {
  path: string;
  content: Buffer;
  /** git blob sha1 */
  oid: string;
  /** sha256, for files stored in LFS */
  lfsOid?: string;
}

export interface HubServerOptions {
  /** owner/name */
  repo: string;
  /** Folder whose files (top level) make up the repository; README.md and .gitattributes are added. */
  dir: string;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Tree entries per page (the hub pages long listings). */
  pageSize?: number;
  /** 0 (default) picks a free port. */
  port?: number;
}

export interface HubServer {
  url: string;
  repo: string;
  commit: string;
  files: ReadonlyMap<string, RepoFile>;
  requests: LoggedRequest[];
  /** Answer 403 as for a gated repository the token has no access to. */
  gated: boolean;
  /** path -> bytes: the next transfer of that file stops after this many bytes (then the fault is cleared). */
  dropAfter: Map<string, number>;
  /** Paths served with one byte flipped. */
  corrupt: Set<string>;
  /** Answer ranged requests that do not start at 0 with the whole file (200), as some proxies do. */
  ignoreRange: boolean;
  /** Requests for file contents (resolve or CDN), not counting 1-byte probes. */
  transfers(): LoggedRequest[];
  close(): Promise<void>;
}

const isLfs = (path: string) => path.endsWith('.safetensors') || path.endsWith('.model');

function gitBlobSha1(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export async function startHubServer(options: HubServerOptions): Promise<HubServer> {
  const files = new Map<string, RepoFile>();
  const contents: [string, Buffer][] = [
    ['README.md', Buffer.from('# fixture\n')],
    ['.gitattributes', Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n')],
  ];
  for (const name of (await readdir(options.dir)).sort()) contents.push([name, await readFile(join(options.dir, name))]);
  for (const [path, content] of contents) {
    files.set(path, { path, content, oid: gitBlobSha1(content), ...(isLfs(path) ? { lfsOid: createHash('sha256').update(content).digest('hex') } : {}) });
  }
  const commit = createHash('sha1').update([...files.values()].map((f) => `${f.path}:${f.oid}`).join('\n')).digest('hex');
  const byLfsOid = new Map([...files.values()].filter((f) => f.lfsOid).map((f) => [f.lfsOid!, f]));
  const pageSize = options.pageSize ?? 4;

  const state: HubServer = {
    url: '',
    repo: options.repo,
    commit,
    files,
    requests: [],
    gated: false,
    dropAfter: new Map(),
    corrupt: new Set(),
    ignoreRange: false,
    transfers: () => state.requests.filter((r) => (r.path.includes('/resolve/') || r.path.startsWith('/cdn/')) && r.range !== 'bytes=0-0'),
    close: () => new Promise((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };

  // HEAD is what a client asks for the default branch's head (registry check-updates does).
  const knownRevision = (rev: string) => rev === 'main' || rev === 'HEAD' || rev === commit;

  function serveContent(req: IncomingMessage, res: ServerResponse, file: RepoFile, headers: Record<string, string>): void {
    let content = file.content;
    if (state.corrupt.has(file.path)) {
      content = Buffer.from(content);
      content[content.length >> 1]! ^= 0xff;
    }
    const size = content.length;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = state.ignoreRange && !req.headers.range?.startsWith('bytes=0-') ? undefined : req.headers.range;
    if (range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m || Number(m[1]) >= size) {
        res.writeHead(416, { 'Content-Range': `bytes */${size}` });
        res.end();
        return;
      }
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      status = 206;
    }
    const body = content.subarray(start, end + 1);
    res.writeHead(status, {
      ...headers,
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(body.length),
      'Accept-Ranges': 'bytes',
      ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
    });
    const drop = state.dropAfter.get(file.path);
    if (drop !== undefined && req.method === 'GET' && body.length > drop) {
      state.dropAfter.delete(file.path);
      res.write(body.subarray(0, drop));
      // FIN after the bytes already written: the client has them all, then sees the body end early.
      res.socket?.end();
      return;
    }
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const authorization = req.headers.authorization;
    const authorized = options.token === undefined || authorization === `Bearer ${options.token}`;
    state.requests.push({ method: req.method ?? '', path: url.pathname + url.search, ...(req.headers.range ? { range: req.headers.range } : {}), authorized });

    // The CDN's signed URLs need no token.
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      const file = byLfsOid.get(cdn[1]!);
      if (!file) return json(res, 404, { error: 'no such object' });
      return serveContent(req, res, file, { ETag: `"${file.lfsOid}"` });
    }
    // As the hub: no token reads as a repository that may not exist; a bad one is refused outright.
    if (!authorized && !authorization) return json(res, 401, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    if (!authorized) return json(res, 401, { error: 'Invalid credentials in Authorization header' });

    const prefix = `/${options.repo}/`;
    const api = `/api/models/${options.repo}/`;
    const path = decodeURIComponent(url.pathname);
    if (!path.startsWith(api) && !path.startsWith(prefix)) return json(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    if (state.gated) return json(res, 403, { error: `Access to model ${options.repo} is restricted and you are not in the authorized list.` }, { 'X-Error-Code': 'GatedRepo' });

    const info = /^revision\/(.+)$/.exec(path.slice(api.length));
    if (path.startsWith(api) && info) {
      if (!knownRevision(info[1]!)) return json(res, 404, { error: `Invalid rev id: ${info[1]}` }, { 'X-Error-Code': 'RevisionNotFound' });
      return json(res, 200, { _id: '0'.repeat(24), id: options.repo, sha: commit, private: true, gated: false, downloads: 0, likes: 0, lastModified: '2026-01-01T00:00:00.000Z', tags: [] });
    }
    const tree = /^tree\/(.+)$/.exec(path.slice(api.length));
    if (path.startsWith(api) && tree) {
      if (!knownRevision(tree[1]!)) return json(res, 404, { error: `Invalid rev id: ${tree[1]}` }, { 'X-Error-Code': 'RevisionNotFound' });
      const all = [...files.values()];
      const cursor = Number(url.searchParams.get('cursor') ?? '0');
      const page = all.slice(cursor, cursor + pageSize).map((f) => ({
        type: 'file',
        oid: f.oid,
        size: f.content.length,
        path: f.path,
        ...(f.lfsOid ? { lfs: { oid: f.lfsOid, size: f.content.length, pointerSize: 134 } } : {}),
      }));
      const next = cursor + pageSize < all.length ? new URL(url) : undefined;
      next?.searchParams.set('cursor', String(cursor + pageSize));
      return json(res, 200, page, next ? { Link: `<${state.url}${next.pathname}${next.search}>; rel="next"` } : {});
    }
    const resolve = /^resolve\/([^/]+)\/(.+)$/.exec(path.slice(prefix.length));
    if (path.startsWith(prefix) && resolve) {
      if (!knownRevision(resolve[1]!)) return json(res, 404, { error: `Invalid rev id: ${resolve[1]}` }, { 'X-Error-Code': 'RevisionNotFound' });
      const file = files.get(resolve[2]!);
      if (!file) return json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      const headers = { 'X-Repo-Commit': commit, ETag: `"${file.oid}"` };
      if (file.lfsOid) {
        res.writeHead(302, { ...headers, Location: `/cdn/${file.lfsOid}`, 'X-Linked-Etag': `"${file.lfsOid}"`, 'X-Linked-Size': String(file.content.length) });
        res.end();
        return;
      }
      return serveContent(req, res, file, headers);
    }
    json(res, 404, { error: 'not found' });
  }

  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}
