import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

// A private PostgreSQL server for tests that stop or restart it (database outages): its own data
// directory under /tmp and its own port, never the shared test server (other test files use that).
// Started like scripts/start-postgres.sh: the server binaries refuse root, so as the `postgres` user.

const run = promisify(execFile);

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly url: string;
  readonly port: number;
  /** `pg_ctl restart -m fast`: every session is terminated (57P01), the server is back when it resolves. */
  restart(): Promise<void>;
  /** `pg_ctl stop -m fast`. */
  stop(): Promise<void>;
  /** `pg_ctl start`; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server and removes its data directory. Idempotent. */
  destroy(): Promise<void>;
}

/** The first port of [from, to] that nothing listens on at 127.0.0.1 (a test's own port range). */
export async function freePortIn(from: number, to: number, skip: readonly number[] = []): Promise<number> {
  const start = from + (process.pid % (to - from + 1));
  for (let i = 0; i <= to - from; i++) {
    const port = from + ((start - from + i) % (to - from + 1));
    if (skip.includes(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port in ${from}-${to}`);
}

/** Creates and starts a private PostgreSQL server on `port`. */
export async function startPrivatePostgres(port: number): Promise<PrivatePostgres> {
  const { stdout } = await run('sh', ['-c', 'command -v initdb || echo /usr/local/bin/initdb']);
  const bindir = path.dirname(stdout.trim());
  const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-private-pg-'));
  const asPostgres = async (file: string, args: string[]) => {
    const cmd = path.join(bindir, file);
    if (process.getuid?.() === 0) await run('runuser', ['-u', 'postgres', '--', cmd, ...args]);
    else await run(cmd, args);
  };
  if (process.getuid?.() === 0) {
    await run('sh', ['-c', `id postgres >/dev/null 2>&1 || useradd --system --home-dir ${dir} --shell /bin/sh postgres`]);
    const { stdout: uid } = await run('id', ['-u', 'postgres']);
    chownSync(dir, Number(uid.trim()), -1);
  }
  const data = path.join(dir, 'data');
  await asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale']);
  const options = `-c listen_addresses=127.0.0.1 -c port=${port} -c max_connections=100 -c fsync=off -c unix_socket_directories=${dir}`;
  const ctl = (...args: string[]) => asPostgres('pg_ctl', ['-D', data, '-l', path.join(dir, 'server.log'), '-w', '-t', '60', ...args]);
  const start = () => ctl('-o', options, 'start');
  await start();
  let destroyed = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    restart: () => ctl('-m', 'fast', '-o', options, 'restart'),
    stop: () => ctl('-m', 'fast', 'stop'),
    start,
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      await ctl('-m', 'immediate', 'stop').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
