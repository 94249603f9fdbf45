/**
 * A real S3 server for tests: s3rver on 127.0.0.1 (random port, its own temporary folder), with a key
 * pair of the test's choosing, and an optional recording proxy in front of it that logs each request's
 * method, path and x-amz-acl header, and can corrupt chosen responses or drop chosen requests
 * (s3rver ignores ACLs, so the wire is where they can be seen).
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startLocalS3, type LocalS3 } from '../pipeline/local-s3.js';
import type { SpacesTarget } from '../pipeline/spaces.js';

export const ACCESS_KEY_ID = 'GLMTESTKEYID0000000';
export const SECRET_ACCESS_KEY = 'glm-test-secret-5bd1f0e2a9c84d7e';

export type S3Server = LocalS3;

/** s3rver on `directory` with the test key pair (a bucket named `bucket` is created if missing); `port` 0 picks a free one. */
export function startS3rver(directory: string, bucket: string, port = 0): Promise<S3Server> {
  return startLocalS3({ directory, buckets: [bucket], port, keys: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY } });
}

export interface Recorded {
  method: string;
  path: string;
  acl?: string;
}

export interface Proxy {
  endpoint: string;
  requests: Recorded[];
  /** When set, GET responses whose path it accepts have their first body byte flipped. */
  corrupt?: (path: string) => boolean;
  /** When set, requests it accepts get no answer: the connection is dropped, as by a failing network. */
  drop?: (method: string, path: string) => boolean;
  stop(): Promise<void>;
}

export async function startProxy(upstreamPort: number): Promise<Proxy> {
  const proxy: Proxy = { endpoint: '', requests: [], stop: async () => {} };
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    const acl = req.headers['x-amz-acl'];
    proxy.requests.push({ method: req.method ?? '', path, acl: typeof acl === 'string' ? acl : undefined });
    if (proxy.drop?.(req.method ?? '', path)) {
      req.socket.destroy();
      return;
    }
    const upstream = request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path, headers: req.headers }, (up: IncomingMessage) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (req.method === 'GET' && proxy.corrupt?.(path)) {
        let first = true;
        up.on('data', (chunk: Buffer) => {
          if (first && chunk.length > 0) {
            chunk[0] = (chunk[0] as number) ^ 0xff;
            first = false;
          }
          res.write(chunk);
        });
        up.on('end', () => res.end());
      } else {
        up.pipe(res);
      }
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.stop = () =>
    new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    });
  return proxy;
}

export function targetFor(endpoint: string, bucket: string, overrides: Partial<SpacesTarget> = {}): SpacesTarget {
  return { bucket, endpoint, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY, ...overrides };
}
