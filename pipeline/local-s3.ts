/**
 * A local S3 server (s3rver, a development dependency) for the demo pipeline and the tests: a real S3
 * protocol implementation with signature checks, on 127.0.0.1.
 */
export interface LocalS3 {
  endpoint: string;
  /** s3rver's fixed key pair. */
  accessKeyId: string;
  secretAccessKey: string;
  close(): Promise<void>;
}

export async function startLocalS3(options: { directory: string; buckets: string[]; port?: number }): Promise<LocalS3> {
  let S3rver: typeof import('s3rver').default;
  try {
    S3rver = (await import('s3rver')).default;
  } catch {
    throw new Error('the local S3 server needs the development dependency s3rver: run `npm ci` in the glm-dllama checkout');
  }
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory: options.directory,
    configureBuckets: options.buckets.map((name) => ({ name })),
  });
  const address = await server.run();
  return { endpoint: `http://127.0.0.1:${address.port}`, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', close: () => server.close() };
}
