import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DB_TARGETS } from '../helpers/databases.js';
import { startTestController, type TestController } from '../helpers/controller.js';
import { restCaller } from '../helpers/rest.js';
import { cliHome, cliShim, runCli } from '../helpers/cli.js';
import { bashComplete } from '../helpers/completion.js';

// What the CLI does with text it did not write: names other users chose, as the shell completes
// them, and a token pasted wrong. The real CLI process and real bash against a real controller
// (HTTP on loopback, embedded PGlite, no agent: a queued environment is enough to have a name).

const ADMIN = 'rgpu_cli-untrusted-admin-token-0123456789ab';
const pglite = DB_TARGETS.find((t) => t.name === 'pglite')!;

describe('remotegpu and untrusted input', () => {
  let ctl: TestController;
  let dir = '';
  let home = '';
  const api = restCaller(() => ctl.controller.httpUrl);

  beforeAll(async () => {
    ctl = await startTestController(pglite, { admin: ADMIN, join: 'cli-untrusted-join-token-0123456789' });
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-untrusted-'));
    home = cliHome();
  });
  afterAll(async () => {
    await ctl?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  it("bash completion never runs what another user's environment name holds ($(…), backquotes); plain names still complete", async () => {
    // Environment names are anyone's to choose, and an admin lists (and completes) everyone's:
    // a user names one so that bash's compgen -W, given it, would run a command on the admin's TAB.
    const mark = (what: string) => path.join(dir, `ran-${what}`);
    const user = await api('POST', '/api/v1/admin/users', ADMIN, { name: 'mallory' });
    expect(user.status).toBe(201);
    const token = (await api('POST', `/api/v1/admin/users/${user.body.data.id}/tokens`, ADMIN, { name: 'laptop' })).body.data.token as string;
    for (const name of [`e-$(touch\${IFS}${mark('subst')})`, 'e-`touch${IFS}' + mark('backquote') + '`', 'e-plain']) {
      const res = await api('POST', '/api/v1/environments', token, { name, image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30, queue: true });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
    const script = path.join(dir, 'remotegpu.bash');
    writeFileSync(script, (await runCli(home, ['completion', 'bash'])).stdout);
    const env = { PATH: `${cliShim(dir)}:${process.env.PATH}`, HOME: home, REMOTEGPU_URL: ctl.controller.httpUrl, REMOTEGPU_TOKEN: ADMIN };
    expect(await bashComplete(script, ['remotegpu', 'ssh', 'e-'], env)).toEqual(['e-plain']);
    expect(await bashComplete(script, ['remotegpu', 'env', 'get', ''], env)).toEqual(['e-plain']);
    expect(readdirSync(dir).filter((f) => f.startsWith('ran-'))).toEqual([]);
  });

  it('a token with a line break or a non-ASCII character is refused in one line that never shows it', async () => {
    const secret = 'rgpu_SECRET-never-printed';
    for (const input of [`${secret}\nsecond-line\n`, `${secret}€\n`]) {
      const login = await runCli(home, ['login', '--url', ctl.controller.httpUrl], { input });
      expect([login.code, login.stderr.trim().split('\n').length], login.stderr).toEqual([2, 1]);
      expect(login.stderr).toMatch(/^remotegpu: that is not an API token/);
      expect(`${login.stdout}${login.stderr}`).not.toContain('SECRET');
    }
    expect(existsSync(path.join(home, '.config/remotegpu/config.json'))).toBe(false);
    const ls = await runCli(home, ['env', 'ls'], { env: { REMOTEGPU_URL: ctl.controller.httpUrl, REMOTEGPU_TOKEN: `${secret}\nx` } });
    expect([ls.code, ls.stderr.trim().split('\n').length], ls.stderr).toEqual([3, 1]);
    expect(ls.stderr).toMatch(/^remotegpu: REMOTEGPU_TOKEN is not an API token/);
    expect(`${ls.stdout}${ls.stderr}`).not.toContain('SECRET');
  });

  it('a URL that is not a controller (a web page answering 200) gives one line, not a stack trace', async () => {
    const page = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>a web page</html>'));
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
      const login = await runCli(home, ['login', '--url', url], { input: 'rgpu_token-of-no-use\n' });
      const ls = await runCli(home, ['env', 'ls'], { env: { REMOTEGPU_URL: url, REMOTEGPU_TOKEN: 'rgpu_token-of-no-use' } });
      for (const run of [login, ls]) {
        expect([run.code, run.stderr.trim().split('\n').length], run.stderr).toEqual([1, 1]);
        expect(run.stderr).toMatch(/^remotegpu: the answer is not JSON, so not the remotegpu API's/);
      }
      expect(existsSync(path.join(home, '.config/remotegpu/config.json'))).toBe(false);
    } finally {
      page.close();
    }
  });
});
