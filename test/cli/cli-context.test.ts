import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from '../../cli/cli.js';
import { writeConfig, type CliConfig } from '../../cli/config.js';

// A Cli works out its context from the config file once per run (not once per request: --wait
// polls every second), and a config it saves (login, logout, context use) is seen.

const config = (current: string, url: string): CliConfig => ({ current, contexts: { [current]: { url, token: 'rgpu_x' } } });

function cliWith(file: string): Cli {
  return new Cli({ stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), env: { REMOTEGPU_CONFIG: file } });
}

describe('Cli context and clients', () => {
  it('reads the config once and keeps one client per kind', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'rgpu-ctx-')), 'config.json');
    writeConfig(file, config('a', 'http://a.example'));
    const cli = cliWith(file);
    cli.setOptions({});
    const client = cli.client();
    expect(cli.client()).toBe(client);
    expect(cli.client({ streaming: true })).not.toBe(client);
    // Changed behind its back (another process): this run goes on with what it read.
    writeFileSync(file, JSON.stringify(config('b', 'http://b.example')));
    expect(cli.context().url).toBe('http://a.example');
    expect(cli.client()).toBe(client);
  });

  it('sees a config it saved, a new --context, and a new request timeout', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'rgpu-ctx-')), 'config.json');
    writeConfig(file, config('a', 'http://a.example'));
    const cli = cliWith(file);
    cli.setOptions({});
    const client = cli.client();
    cli.saveConfig({ current: 'b', contexts: { ...config('a', 'http://a.example').contexts, ...config('b', 'http://b.example').contexts } });
    expect(cli.context()).toMatchObject({ name: 'b', url: 'http://b.example' });
    expect(cli.client()).not.toBe(client);
    cli.setOptions({ context: 'a' });
    expect(cli.context().name).toBe('a');
    const plain = cli.client();
    cli.setRequestTimeout(3000);
    expect(cli.client()).not.toBe(plain);
  });
});
