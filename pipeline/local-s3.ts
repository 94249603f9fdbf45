/**
 * A local S3 server (s3rver, a development dependency) for the demo pipeline and the tests: the S3
 * protocol on 127.0.0.1. s3rver checks that the access key id is one it knows, not the signature.
 */
import { createRequire } from 'node:module';

export interface LocalS3 {
  endpoint: string;
  port: number;
  directory: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Stops listening and drops every open connection at once, as a crashed or restarted server would. */
  close(): Promise<void>;
}

export interface LocalS3Options {
  /** Where the buckets live (kept across restarts on the same folder). */
  directory: string;
  buckets: string[];
  /** 0 (default) picks a free port. */
  port?: number;
  /** A key pair to accept besides s3rver's own (S3RVER / S3RVER). */
  keys?: { accessKeyId: string; secretAccessKey: string };
}

export async function startLocalS3(options: LocalS3Options): Promise<LocalS3> {
  let S3rver: typeof import('s3rver').default;
  try {
    S3rver = (await import('s3rver')).default;
  } catch {
    throw new Error('the local S3 server needs the development dependency s3rver: run `npm ci` in the glm-dllama checkout');
  }
  const keys = options.keys ?? { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  if (options.keys) {
    // s3rver has no option for key pairs: its account model takes them.
    const { DUMMY_ACCOUNT } = createRequire(import.meta.url)('s3rver/lib/models/account.js') as { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void } };
    DUMMY_ACCOUNT.createKeyPair(keys.accessKeyId, keys.secretAccessKey);
  }
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory: options.directory,
    configureBuckets: options.buckets.map((name) => ({ name, configs: [] })),
  });
  const address = await server.run();
  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    directory: options.directory,
    ...keys,
    close: () => {
      if (!closed) {
        closed = server.close();
        server.httpServer?.closeAllConnections();
      }
      return closed;
    },
  };
}
