/**
 * A private PostgreSQL cluster for a test (Debian's postgresql package): initdb in a temporary folder, the
 * server on a loopback port with its socket in that folder, stopped and removed at the end. PostgreSQL
 * refuses to run as root, so as root it runs as the `postgres` user the package creates.
 */
import { chmodSync, chownSync, copyFileSync, existsSync, readdirSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { freePort, removeDir, tempDir } from './helpers.js';

export interface Postgres {
  /** postgres:// URL of the `postgres` database as the `postgres` superuser (trust authentication). */
  readonly url: string;
  readonly port: number;
  /** Runs one of PostgreSQL's programs (pg_dump, psql...) against the cluster; returns its stdout. */
  run(program: string, args: string[]): string;
  /** Stops the server (fast shutdown), keeping the data; start() brings it back on the same port. */
  stop(): void;
  start(): void;
  /** Stops the server and removes the cluster. */
  remove(): Promise<void>;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  if (versions.length === 0) throw new Error('PostgreSQL (Debian postgresql) is required for this test: no /usr/lib/postgresql/*/bin/initdb');
  return join(root, versions.sort((a, b) => Number(b) - Number(a))[0]!, 'bin');
}

/** With `tls`, the server also takes TLS connections with that certificate and key (PEM files). */
export async function startPostgres(tls?: { cert: string; key: string }): Promise<Postgres> {
  const bin = binDir();
  const dir = await tempDir('glm-dllama-pg-');
  const asRoot = process.getuid?.() === 0;
  const own = (path: string) => {
    if (!asRoot) return;
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(path, id('-u'), id('-g'));
  };
  own(dir);
  let tlsOptions = '';
  if (tls) {
    // the server reads its key only when the key is its own and private
    for (const [from, name] of [[tls.cert, 'server.crt'], [tls.key, 'server.key']] as const) {
      copyFileSync(from, join(dir, name));
      chmodSync(join(dir, name), 0o600);
      own(join(dir, name));
    }
    tlsOptions = ` -c ssl=on -c ssl_cert_file=${join(dir, 'server.crt')} -c ssl_key_file=${join(dir, 'server.key')}`;
  }
  const exec = (program: string, args: string[]): string => {
    const [command, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, program), ...args]] : [join(bin, program), args];
    const r = spawnSync(command, argv, { encoding: 'utf8', cwd: dir });
    if (r.status !== 0) throw new Error(`${program} ${args.join(' ')}: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const data = join(dir, 'data');
  exec('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const start = () => {
    exec('pg_ctl', ['-D', data, '-w', '-l', join(dir, 'server.log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -F${tlsOptions}`, 'start']);
  };
  const stop = () => {
    exec('pg_ctl', ['-D', data, '-w', '-m', 'fast', 'stop']);
  };
  start();
  let running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    run: (program, args) => exec(program, ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args]),
    stop() {
      stop();
      running = false;
    },
    start() {
      start();
      running = true;
    },
    async remove() {
      if (running) stop();
      await removeDir(dir);
    },
  };
}
