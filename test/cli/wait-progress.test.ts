import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { Cli, type Environment } from '../../cli/cli.js';
import { Progress } from '../../cli/wait.js';

// The status line `--wait` shows on stderr: rewritten in place on a terminal, one line per change
// elsewhere (a CI log must not be a heap of carriage returns).

function io(tty: boolean) {
  const stderr = Object.assign(new PassThrough(), { isTTY: tty });
  let text = '';
  stderr.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const cli = new Cli({ stdin: new PassThrough(), stdout: new PassThrough(), stderr, env: {} });
  return { cli, text: () => text };
}

const env = (status: string, status_reason = '') => ({ name: 'dev', env_id: 'env-abc', status, status_reason }) as Environment;

async function run(tty: boolean) {
  const { cli, text } = io(tty);
  const p = new Progress(cli, 'dev (env-abc)');
  for (const e of [env('pending', 'waiting for capacity'), env('pending', 'waiting for capacity'), env('creating'), env('starting'), env('running')]) await p.show(e);
  await p.end();
  return text();
}

describe('the --wait progress line', () => {
  it('without a terminal: one line per change, repeats left out, the reason after the status', async () => {
    expect(await run(false)).toBe('dev (env-abc): pending (waiting for capacity)\ndev (env-abc): creating\ndev (env-abc): starting\ndev (env-abc): running\n');
  });

  it('on a terminal: one line rewritten with the statuses so far, ended by a newline', async () => {
    const text = await run(true);
    const frames = text.split('\r\x1b[2K').filter(Boolean);
    expect(frames).toEqual([
      'dev (env-abc): pending (waiting for capacity)',
      'dev (env-abc): pending → creating',
      'dev (env-abc): pending → creating → starting',
      'dev (env-abc): pending → creating → starting → running\n',
    ]);
  });
});
