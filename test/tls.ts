/** A throwaway CA and a server certificate for 127.0.0.1 signed by it (openssl), for the TLS tests of the stores. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runProgram } from './helpers.js';

export interface TestCertificates {
  /** PEM files in the folder given. */
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export async function makeCertificates(dir: string): Promise<TestCertificates> {
  const ssl = (...args: string[]) => {
    const r = runProgram('openssl', args);
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  };
  const [ca, caKey, cert, key] = ['ca.pem', 'ca.key', 'server.pem', 'server.key'].map((f) => join(dir, f)) as [string, string, string, string];
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test CA', '-keyout', caKey, '-out', ca);
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', join(dir, 'server.csr'));
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', join(dir, 'server.csr'), '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '1', '-extfile', join(dir, 'san.ext'), '-out', cert);
  return { ca, cert, key };
}
