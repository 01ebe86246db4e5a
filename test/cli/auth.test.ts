import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { DB_TARGETS } from '../helpers/databases.js';
import { startTestController, type TestController } from '../helpers/controller.js';
import { freePort } from '../helpers/docker.js';
import { cliHome, cliLogin, runCli } from '../helpers/cli.js';

// `remotegpu login|logout|whoami|context` as a user runs them: the real CLI process against a real
// controller (HTTP on loopback, embedded PGlite), with a HOME of its own.

const ADMIN = 'rgpu_cli-auth-admin-token-0123456789abcdef';
const pglite = DB_TARGETS.find((t) => t.name === 'pglite')!;

describe('remotegpu login, whoami, contexts', () => {
  let ctl: TestController;
  let url = '';
  const configOf = (home: string) => JSON.parse(readFileSync(path.join(home, '.config/remotegpu/config.json'), 'utf8'));

  beforeAll(async () => {
    ctl = await startTestController(pglite, { admin: ADMIN, join: 'cli-auth-join-token-0123456789' });
    url = ctl.controller.httpUrl;
  });
  afterAll(async () => ctl?.close());

  it('login reads the token from stdin, checks it, and saves it 0600 in a 0700 directory as the current context', async () => {
    const home = cliHome();
    const run = await runCli(home, ['login', '--url', `${url}/`], { input: `${ADMIN}\n` });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('as admin (admin)');
    expect(run.stdout).toBe('');
    expect(run.stderr).not.toContain(ADMIN);
    const file = path.join(home, '.config/remotegpu/config.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    const name = new URL(url).host;
    expect(configOf(home)).toEqual({ current: name, contexts: { [name]: { url, token: ADMIN } } });
  });

  it('whoami --json prints the API\'s data of GET /api/v1/me; the table names the user and the controller', async () => {
    const home = cliHome();
    await cliLogin(home, url, ADMIN);
    const json = await runCli(home, ['whoami', '--json']);
    expect(json.code).toBe(0);
    const me = (await (await fetch(`${url}/api/v1/me`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { data: unknown };
    expect(JSON.parse(json.stdout)).toEqual(me.data);
    const human = await runCli(home, ['whoami']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^user:\s+admin$/m);
    expect(human.stdout).toMatch(new RegExp(`^controller:\\s+${url}$`, 'm'));
  });

  it('a wrong token is refused with exit 3 and one line, and the config is left as it was', async () => {
    const home = cliHome();
    await cliLogin(home, url, ADMIN, 'good');
    const before = readFileSync(path.join(home, '.config/remotegpu/config.json'), 'utf8');
    const run = await runCli(home, ['login', '--url', url, '--name', 'bad'], { input: 'rgpu_not-a-real-token-0123456789\n' });
    expect(run.code).toBe(3);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^remotegpu: .*token/i);
    expect(readFileSync(path.join(home, '.config/remotegpu/config.json'), 'utf8')).toBe(before);
  });

  it('several named contexts: context ls marks the current one, context use and --context switch, logout forgets one', async () => {
    const home = cliHome();
    await cliLogin(home, url, ADMIN, 'one');
    await cliLogin(home, url, ADMIN, 'two');
    const ls = await runCli(home, ['context', 'ls']);
    expect(ls.stdout).toMatch(/^\*\s+two\s/m);
    expect(ls.stdout).toMatch(/^\s+one\s/m);
    expect((await runCli(home, ['context', 'use', 'one'])).code).toBe(0);
    expect(configOf(home).current).toBe('one');
    expect((await runCli(home, ['context', 'use', 'three'])).code).toBe(4);
    expect((await runCli(home, ['--context', 'two', 'whoami'])).code).toBe(0);
    expect((await runCli(home, ['--context', 'nope', 'whoami'])).code).toBe(3);
    expect((await runCli(home, ['logout'])).code).toBe(0);
    expect(Object.keys(configOf(home).contexts)).toEqual(['two']);
    expect(configOf(home).current).toBe('two');
  });

  it('not signed in, an unreachable controller, an empty token, a bad URL and a damaged config: one line each and their exit codes', async () => {
    const home = cliHome();
    const notSignedIn = await runCli(home, ['whoami']);
    expect([notSignedIn.code, notSignedIn.stderr]).toEqual([3, 'remotegpu: not signed in: run `remotegpu login --url URL` first\n']);

    const closed = `http://127.0.0.1:${await freePort()}`;
    const down = await runCli(home, ['whoami'], { env: { REMOTEGPU_URL: closed, REMOTEGPU_TOKEN: ADMIN } });
    expect(down.code).toBe(6);
    expect(down.stderr).toBe(`remotegpu: cannot reach the controller at ${closed}: ECONNREFUSED\n`);

    const empty = await runCli(home, ['login', '--url', url], { input: '\n' });
    expect(empty.code).toBe(2);
    const badUrl = await runCli(home, ['login', '--url', 'gpu.example.com'], { input: `${ADMIN}\n` });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain('is not a URL');

    mkdirSync(path.join(home, '.config/remotegpu'), { recursive: true });
    writeFileSync(path.join(home, '.config/remotegpu/config.json'), '{"current": 3');
    const damaged = await runCli(home, ['whoami']);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toMatch(/config\.json is not valid JSON/);
  });

  it('an unknown command or option is a usage error (exit 2); --help and --version exit 0', async () => {
    const home = cliHome();
    expect((await runCli(home, ['nonsense'])).code).toBe(2);
    expect((await runCli(home, ['whoami', '--bogus'])).code).toBe(2);
    const help = await runCli(home, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes:');
    expect((await runCli(home, ['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
