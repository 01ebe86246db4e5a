import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { promisify } from 'node:util';

// Host-disruptive faults: restarting dockerd and partitioning loopback addresses with iptables.
// Only the scenarios defined when CI=true or REMOTEGPU_FAULTS_HOST=1 use these.

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const hostDisruptiveAllowed = () => process.env.CI === 'true' || process.env.REMOTEGPU_FAULTS_HOST === '1';

async function dockerAnswers(): Promise<boolean> {
  return run('docker', ['info', '--format', '{{.ID}}'], { timeout: 10_000 }).then(
    () => true,
    () => false,
  );
}

function dockerdPid(): number | undefined {
  try {
    const pid = Number(readFileSync('/var/run/docker.pid', 'utf8').trim());
    return pid > 0 && existsSync(`/proc/${pid}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** How the running dockerd was started (its argv and where its output goes), to start it the same way. */
let lastDockerd: { argv: string[]; log: string } | undefined;

/**
 * Stops dockerd (SIGTERM, as `systemctl restart docker` does) and starts it again the way .ci/run
 * does (`nohup dockerd >log 2>&1 &`, detached from this process), then waits for it to answer.
 * Returns the time (Date.now()) at which the engine answered again.
 */
export async function restartDockerd(): Promise<number> {
  if (await systemdDocker()) {
    // A dockerd under systemd is restarted by systemd (a second one started by hand would fight it).
    await run('systemctl', ['restart', 'docker'], { timeout: 120_000 });
    return startDockerd();
  }
  const pid = dockerdPid();
  if (!pid) throw new Error('no dockerd found (/var/run/docker.pid): the dockerd scenario needs a dockerd this machine started');
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  let log = '/tmp/remotegpu-faults-dockerd.log';
  try {
    const out = readlinkSync(`/proc/${pid}/fd/1`);
    if (out.startsWith('/')) log = out;
  } catch {
    // keep the default log file
  }
  lastDockerd = { argv, log };
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 600 && existsSync(`/proc/${pid}`); i++) await sleep(100);
  if (existsSync(`/proc/${pid}`)) throw new Error(`dockerd (pid ${pid}) did not stop within 60 s`);
  return startDockerd();
}

async function systemdDocker(): Promise<boolean> {
  return run('systemctl', ['is-active', '--quiet', 'docker']).then(
    () => true,
    () => false,
  );
}

/** Starts dockerd as it ran before (or plain `dockerd`) unless the engine answers; waits up to 60 s. */
export async function startDockerd(): Promise<number> {
  if (await dockerAnswers()) return Date.now();
  if (await systemdDocker().then((active) => active || run('systemctl', ['start', 'docker']).then(() => true, () => false))) {
    for (let i = 0; i < 120 && !(await dockerAnswers()); i++) await sleep(500);
  }
  if (await dockerAnswers()) return Date.now();
  const { argv, log } = lastDockerd ?? { argv: ['dockerd'], log: '/tmp/remotegpu-faults-dockerd.log' };
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  spawn('bash', ['-c', `nohup ${quoted} >>'${log}' 2>&1 &`], { detached: true, stdio: 'ignore' }).unref();
  for (let i = 0; i < 120; i++) {
    if (await dockerAnswers()) return Date.now();
    await sleep(500);
  }
  throw new Error(`dockerd did not answer within 60 s of its start (log: ${log})`);
}

/**
 * A loopback partition: TCP to and from the given address:port pairs is dropped, in a chain of its
 * own (REMOTEGPU-FAULTS) jumped to from INPUT and OUTPUT. `heal` flushes it; `remove` takes the
 * chain and its jumps away (call it in a finally).
 */
export class Partition {
  static readonly CHAIN = 'REMOTEGPU-FAULTS';

  constructor(private readonly endpoints: readonly { address: string; port: number }[]) {}

  private static ipt(args: string[]) {
    return run('iptables', ['-w', '5', ...args]);
  }

  async cut(): Promise<void> {
    const { CHAIN } = Partition;
    await Partition.ipt(['-N', CHAIN]).catch(() => undefined);
    await Partition.ipt(['-F', CHAIN]);
    for (const builtin of ['INPUT', 'OUTPUT']) {
      const present = await Partition.ipt(['-C', builtin, '-j', CHAIN]).then(() => true, () => false);
      if (!present) await Partition.ipt(['-I', builtin, '1', '-j', CHAIN]);
    }
    for (const { address, port } of this.endpoints) {
      await Partition.ipt(['-A', CHAIN, '-p', 'tcp', '-d', address, '--dport', String(port), '-j', 'DROP']);
      await Partition.ipt(['-A', CHAIN, '-p', 'tcp', '-s', address, '--sport', String(port), '-j', 'DROP']);
    }
  }

  async heal(): Promise<void> {
    await Partition.ipt(['-F', Partition.CHAIN]).catch(() => undefined);
  }

  /** Removes the chain and its jumps; safe to call when they are not there. */
  static async remove(): Promise<void> {
    for (const builtin of ['INPUT', 'OUTPUT']) {
      while (await Partition.ipt(['-D', builtin, '-j', Partition.CHAIN]).then(() => true, () => false));
    }
    await Partition.ipt(['-F', Partition.CHAIN]).catch(() => undefined);
    await Partition.ipt(['-X', Partition.CHAIN]).catch(() => undefined);
  }
}
