import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// A platform program (controller or agent) run as a real child process, so that kill -9 is real:
// no shutdown hook runs, sockets are cut by the kernel, and whatever the program holds is lost.

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const OUTPUT_KEEP = 200_000;

export class PlatformProcess {
  private child: ChildProcess | undefined;
  private out = '';
  /** Exits nobody asked for (a crash), with the code or signal. */
  readonly crashes: string[] = [];
  private expectingExit = false;

  /** `pidFile`: every pid this program runs under is appended there (see killLeftovers). */
  constructor(
    readonly name: string,
    private readonly entry: string,
    private env: Record<string, string>,
    private readonly pidFile?: string,
  ) {}

  /** Starts the program (again); its output is appended to what earlier runs printed. */
  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.expectingExit = false;
    const child = spawn(process.execPath, ['--import', 'tsx', this.entry], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    if (this.pidFile && child.pid) appendFileSync(this.pidFile, `${child.pid}\n`);
    const append = (d: Buffer) => {
      this.out += d.toString();
      if (this.out.length > OUTPUT_KEEP * 2) this.out = this.out.slice(-OUTPUT_KEEP);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    child.once('exit', (code, signal) => {
      if (!this.expectingExit) this.crashes.push(`${this.name} exited on its own (code ${code}, signal ${signal})`);
      this.out += `\n[${this.name} exited: code ${code}, signal ${signal}]\n`;
    });
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Replaces some variables of the next start (e.g. the controller addresses of an agent). */
  setEnv(vars: Record<string, string>): void {
    this.env = { ...this.env, ...vars };
  }

  /** SIGKILL, and waits for the exit. */
  async kill9(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGTERM (graceful), SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.signal('SIGTERM');
    clearTimeout(timer);
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.expectingExit = true;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(sig);
    await exited;
  }

  /** Everything the program printed, across restarts. */
  get output(): string {
    return this.out;
  }

  /** The last `lines` lines it printed, for failure messages. */
  tail(lines = 40): string {
    return `--- ${this.name} (last ${lines} lines) ---\n${this.out.split('\n').slice(-lines).join('\n')}`;
  }

  /** Waits until the output matches `pattern` (after `from` characters); returns the match. */
  async waitForOutput(pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.out.slice(from).match(pattern);
      if (match) return match;
      if (!this.running && this.child) throw new Error(`${this.name} exited before printing ${pattern}\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Kills (SIGKILL) the platform programs a former run recorded in `pidFile` and left running (an
 * aborted test run): an agent of the same namespace would otherwise remove this run's containers
 * as unknown. Only pids whose command line is still one of ours are touched.
 */
export function killLeftovers(pidFile: string): void {
  let pids: number[] = [];
  try {
    pids = readFileSync(pidFile, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (/(controller|agent)\/main\.ts/.test(cmd)) process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  rmSync(pidFile, { force: true });
}
