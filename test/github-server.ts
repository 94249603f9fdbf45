/**
 * A local stand-in for the GitHub REST endpoints the actions call (issue comments: list, create, update),
 * recording every call. Tokens are checked: unknown ones get 401, read-only ones (as a fork pull request's)
 * get 403 on writes.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedCall {
  method: string;
  path: string;
  body?: unknown;
}

export interface Comment {
  id: number;
  body: string;
  issue: number;
}

export interface GithubServer {
  url: string;
  calls: RecordedCall[];
  comments: Comment[];
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

export async function startGithubServer(options: { tokens: string[]; readOnlyTokens?: string[]; owner: string; repo: string }): Promise<GithubServer> {
  const calls: RecordedCall[] = [];
  const comments: Comment[] = [];
  let nextId = 1000;
  let base = '';
  const view = (c: Comment) => ({ id: c.id, body: c.body, html_url: `https://github.com/${options.owner}/${options.repo}/pull/${c.issue}#issuecomment-${c.id}`, user: { login: 'github-actions[bot]' } });
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const body = await readBody(req);
      calls.push({ method: req.method ?? '', path: url.pathname + url.search, body });
      const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(json));
      };
      const token = /^(?:token|bearer) (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const readOnly = token !== undefined && (options.readOnlyTokens ?? []).includes(token);
      if (!token || (!options.tokens.includes(token) && !readOnly)) return send(401, { message: 'Bad credentials' });
      const prefix = `/repos/${options.owner}/${options.repo}/issues/`;
      if (!url.pathname.startsWith(prefix)) return send(404, { message: 'Not Found' });
      const rest = url.pathname.slice(prefix.length);
      const list = /^(\d+)\/comments$/.exec(rest);
      const one = /^comments\/(\d+)$/.exec(rest);
      if (req.method !== 'GET' && readOnly) return send(403, { message: 'Resource not accessible by integration' });
      if (list && req.method === 'GET') {
        // Paginated like GitHub: per_page and page, with a Link header to the next page.
        const issue = Number(list[1]);
        const perPage = Number(url.searchParams.get('per_page') ?? 30);
        const page = Number(url.searchParams.get('page') ?? 1);
        const all = comments.filter((c) => c.issue === issue);
        const slice = all.slice((page - 1) * perPage, page * perPage);
        const headers: Record<string, string> = {};
        if (page * perPage < all.length) headers.link = `<${base}${url.pathname}?per_page=${perPage}&page=${page + 1}>; rel="next"`;
        return send(200, slice.map(view), headers);
      }
      if (list && req.method === 'POST') {
        const c = { id: nextId++, body: (body as { body: string }).body, issue: Number(list[1]) };
        comments.push(c);
        return send(201, view(c));
      }
      if (one && req.method === 'PATCH') {
        const c = comments.find((x) => x.id === Number(one[1]));
        if (!c) return send(404, { message: 'Not Found' });
        c.body = (body as { body: string }).body;
        return send(200, view(c));
      }
      return send(404, { message: 'Not Found' });
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: base, calls, comments, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
