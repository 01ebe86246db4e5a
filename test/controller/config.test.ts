import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadControllerConfig } from '../../controller/config.js';
import { loadAgentConfig } from '../../agent/config.js';
import { ConfigError } from '../../common/config.js';

const run = promisify(execFile);

describe('controller config', () => {
  it('has the documented defaults', () => {
    const c = loadControllerConfig({});
    expect(c).toMatchObject({
      httpPort: 8080,
      grpcPort: 9090,
      databaseUrl: undefined,
      dataDir: './data',
      hostTimeoutMs: 30000,
      sshPortRange: { from: 20000, to: 24999 },
      jupyterPortRange: { from: 25000, to: 28999 },
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('names every bad value in one line and hides secrets', () => {
    let error: unknown;
    try {
      loadControllerConfig({
        REMOTEGPU_HTTP_PORT: 'abc',
        REMOTEGPU_GRPC_PORT: '70000',
        REMOTEGPU_SSH_PORT_RANGE: '40000-30000',
        DATABASE_URL: 'mysql://secret@db/x',
        REMOTEGPU_BOOTSTRAP_TOKEN: 'short',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message.split('\n')).toHaveLength(1);
    for (const name of ['REMOTEGPU_HTTP_PORT="abc"', 'REMOTEGPU_GRPC_PORT="70000"', 'REMOTEGPU_SSH_PORT_RANGE', 'DATABASE_URL=(hidden)', 'REMOTEGPU_BOOTSTRAP_TOKEN=(hidden)']) {
      expect(message).toContain(name);
    }
    expect(message).not.toContain('secret@db');
    expect(message).not.toContain('short');
  });

  it('makes the real process exit with a single-line error for REMOTEGPU_HTTP_PORT=abc', async () => {
    const result = await run('node', ['--import', 'tsx', 'controller/main.ts'], {
      env: { ...process.env, REMOTEGPU_HTTP_PORT: 'abc' },
      timeout: 30_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([
      'remotegpu-controller: invalid configuration: REMOTEGPU_HTTP_PORT="abc": expected an integer port number 1-65535',
    ]);
  });
});

describe('agent config', () => {
  it('has the documented defaults', () => {
    expect(loadAgentConfig({})).toMatchObject({
      controller: '127.0.0.1:9090',
      listen: '0.0.0.0:9091',
      gpuMode: 'auto',
      nvidiaSmi: 'nvidia-smi',
      reportIntervalMs: 10000,
      dockerHost: 'unix:///var/run/docker.sock',
      cpuCores: 0,
      namespace: undefined,
    });
    expect(loadAgentConfig({ REMOTEGPU_CPU_CORES: '16', REMOTEGPU_NAMESPACE: 'dev-1' })).toMatchObject({ cpuCores: 16, namespace: 'dev-1' });
    expect(() => loadAgentConfig({ REMOTEGPU_NAMESPACE: 'Bad Name' })).toThrow(/REMOTEGPU_NAMESPACE="Bad Name"/);
  });

  it('rejects a bad GPU mode and a bad controller address together', () => {
    expect(() => loadAgentConfig({ REMOTEGPU_GPU_MODE: 'magic', REMOTEGPU_CONTROLLER: 'nohost' })).toThrow(
      /REMOTEGPU_CONTROLLER="nohost": expected HOST:PORT.*REMOTEGPU_GPU_MODE="magic"/,
    );
  });
});
