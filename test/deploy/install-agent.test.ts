import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// deploy/install-agent.sh with --prefix: every file under a temp dir, no root, no build, no systemctl.

const SCRIPT = path.resolve('deploy/install-agent.sh');
/** The join token's new shape, `<secret>@sha256:<CA hash>`: the script treats it as opaque. */
const TOKEN = `jt_Zm9vYmFyYmF6cXV4LXNlY3JldA@sha256:${'0123456789abcdef'.repeat(4)}`;

interface Ran {
  readonly code: number | null;
  readonly output: string;
}

function install(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  if (!options.env?.REMOTEGPU_JOIN_TOKEN) delete env.REMOTEGPU_JOIN_TOKEN;
  delete env.REMOTEGPU_CONTROLLER;
  delete env.REMOTEGPU_INSTALL_ROOT;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.on('error', () => {}); // EPIPE: the script refused before reading its input
    child.stdin.end(options.stdin ?? '');
  });
}

describe('deploy/install-agent.sh', () => {
  let root: string;
  let envFile: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'rgpu-install-'));
    envFile = path.join(root, 'etc/remotegpu/agent.env');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('passes bash -n', async () => {
    const result = await new Promise<number | null>((resolve) => spawn('bash', ['-n', SCRIPT], { stdio: 'inherit' }).on('close', resolve));
    expect(result).toBe(0);
  });

  it('writes REMOTEGPU_AGENT_METRICS_ADDR into a new agent.env when it is given', async () => {
    const ran = await install(['--prefix', root, '--controller', 'controller.example.com:9090', '--join-token-file', '-'], { stdin: `${TOKEN}\n`, env: { REMOTEGPU_AGENT_METRICS_ADDR: '10.0.0.5:9464' } });
    expect(ran.code, ran.output).toBe(0);
    expect(readFileSync(envFile, 'utf8').split('\n')).toContain('REMOTEGPU_AGENT_METRICS_ADDR=10.0.0.5:9464');
  });

  it('writes the token from standard input into agent.env, mode 0600, and never prints it', async () => {
    const ran = await install(['--prefix', root, '--controller', 'controller.example.com:9090', '--join-token-file', '-'], { stdin: `${TOKEN}\n` });
    expect(ran.code, ran.output).toBe(0);
    expect(ran.output).not.toContain(TOKEN);
    expect(ran.output).not.toContain('jt_Zm9v');
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(envFile)).mode & 0o077).toBe(0);
    expect(readFileSync(envFile, 'utf8').split('\n')).toEqual([
      'REMOTEGPU_CONTROLLER=controller.example.com:9090',
      `REMOTEGPU_JOIN_TOKEN=${TOKEN}`,
      'REMOTEGPU_DATA_DIR=/var/lib/remotegpu',
      'REMOTEGPU_AGENT_LISTEN=0.0.0.0:9091',
      '',
    ]);
    expect(existsSync(path.join(root, 'etc/systemd/system/remotegpu-agent.service'))).toBe(true);
    expect(existsSync(path.join(root, 'opt/remotegpu/deploy/remotegpu-agent.service'))).toBe(true);
  });

  it('reads the token from a file, and a re-install replaces the token and keeps the other lines', async () => {
    const first = path.join(root, 'first-token');
    writeFileSync(first, `old-${TOKEN}\n`, { mode: 0o600 });
    expect((await install(['--prefix', root, '--controller', 'a:9090', '--join-token-file', first])).code).toBe(0);
    writeFileSync(envFile, `${readFileSync(envFile, 'utf8')}REMOTEGPU_GPU_MODE=cdi\n`);
    const second = path.join(root, 'second-token');
    writeFileSync(second, TOKEN, { mode: 0o600 }); // no final newline
    const ran = await install([`--prefix=${root}`, '--controller=b:9090', `--join-token-file=${second}`]);
    expect(ran.code, ran.output).toBe(0);
    expect(ran.output).not.toContain(TOKEN);
    const lines = readFileSync(envFile, 'utf8').split('\n');
    expect(lines.filter((l) => l.startsWith('REMOTEGPU_JOIN_TOKEN='))).toEqual([`REMOTEGPU_JOIN_TOKEN=${TOKEN}`]);
    expect(lines.filter((l) => l.startsWith('REMOTEGPU_CONTROLLER='))).toEqual(['REMOTEGPU_CONTROLLER=b:9090']);
    expect(lines).toContain('REMOTEGPU_GPU_MODE=cdi');
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
  });

  it.each([
    ['--join-token TOKEN', ['--join-token', TOKEN], {}],
    ['--join-token=TOKEN', [`--join-token=${TOKEN}`], {}],
    ['a bare argument', [TOKEN], {}],
    ['REMOTEGPU_JOIN_TOKEN in the environment', ['--join-token-file', '-'], { REMOTEGPU_JOIN_TOKEN: TOKEN }],
  ])('refuses the token given as %s, without printing it', async (_name, args, env) => {
    const ran = await install(['--prefix', root, '--controller', 'c:9090', ...args], { env, stdin: TOKEN });
    expect(ran.code).toBe(1);
    expect(ran.output).toMatch(/--join-token-file/);
    expect(ran.output).not.toContain(TOKEN);
    expect(ran.output).not.toContain('sha256:0123');
    expect(existsSync(envFile)).toBe(false);
  });

  it('refuses an empty or multi-line token, a missing token file and a missing --controller', async () => {
    const cases: [string[], string, RegExp][] = [
      [['--controller', 'c:9090', '--join-token-file', '-'], '', /join token is empty \(from standard input\)/],
      [['--controller', 'c:9090', '--join-token-file', '-'], `${TOKEN}\nsecond line\n`, /one line without spaces/],
      [['--controller', 'c:9090', '--join-token-file', path.join(root, 'none')], '', /cannot read the join token file/],
      [['--join-token-file', '-'], TOKEN, /--controller HOST:PORT is required/],
      [['--controller', 'c:9090'], TOKEN, /--join-token-file FILE .* is required/],
    ];
    for (const [args, stdin, message] of cases) {
      const ran = await install(['--prefix', root, ...args], { stdin });
      expect(ran.code, args.join(' ')).toBe(1);
      expect(ran.output).toMatch(message);
      expect(ran.output).not.toContain(TOKEN);
      expect(existsSync(envFile)).toBe(false);
    }
  });
});
