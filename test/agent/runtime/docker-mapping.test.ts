import Dockerode, { type ContainerInspectInfo } from 'dockerode';
import { describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../agent/runtime/docker.js';
import { commitConfig } from '../../../agent/runtime/docker-commit.js';
import { classifyDockerMessage, dockerMessage, toRuntimeError } from '../../../agent/runtime/docker-errors.js';
import { EventMapper } from '../../../agent/runtime/docker-events.js';
import { LogDecoder } from '../../../agent/runtime/docker-logs.js';
import { parseDockerTime, statusFromInspect } from '../../../agent/runtime/docker-status.js';

function frame(stream: 1 | 2, text: string): Buffer {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

describe('LogDecoder', () => {
  it('demultiplexes frames into timestamped stdout and stderr lines', () => {
    const d = new LogDecoder(false);
    const lines = d.push(
      Buffer.concat([
        frame(1, '2025-01-02T03:04:05.123456789Z hello\n'),
        frame(2, '2025-01-02T03:04:06.5Z oops\n'),
      ]),
    );
    expect(lines).toEqual([
      { atMs: Date.UTC(2025, 0, 2, 3, 4, 5, 123), stream: 'stdout', text: 'hello' },
      { atMs: Date.UTC(2025, 0, 2, 3, 4, 6, 500), stream: 'stderr', text: 'oops' },
    ]);
  });

  it('keeps frames, lines and UTF-8 characters split across chunks whole', () => {
    const d = new LogDecoder(false);
    const all = frame(1, '2025-01-02T03:04:05Z héllo wörld\n');
    const out = [];
    for (let i = 0; i < all.length; i += 3) out.push(...d.push(all.subarray(i, i + 3)));
    expect(out).toEqual([{ atMs: Date.UTC(2025, 0, 2, 3, 4, 5), stream: 'stdout', text: 'héllo wörld' }]);
  });

  it('reads a TTY container’s raw stream as stdout and flushes a last line without newline', () => {
    const d = new LogDecoder(true);
    expect(d.push(Buffer.from('2025-01-02T03:04:05Z a\r\n2025-01-02T03:04:05Z b'))).toEqual([
      { atMs: Date.UTC(2025, 0, 2, 3, 4, 5), stream: 'stdout', text: 'a' },
    ]);
    expect(d.flush()).toEqual([{ atMs: Date.UTC(2025, 0, 2, 3, 4, 5), stream: 'stdout', text: 'b' }]);
  });
});

describe('EventMapper', () => {
  const attrs = (extra: Record<string, string> = {}) => ({
    'remotegpu.env-id': 'env-1',
    'remotegpu.managed': 'true',
    name: 'remotegpu-env-1',
    ...extra,
  });
  const msg = (Action: string, extra: Record<string, string> = {}) => ({
    Type: 'container',
    Action,
    Actor: { ID: 'c1', Attributes: attrs(extra) },
    time: 1_700_000_000,
    timeNano: 1_700_000_000_123_456_768, // exactly representable as a double, as Docker's JSON is read
  });

  it('maps start, oom and die; the die after an oom says so', () => {
    const m = new EventMapper();
    expect(m.map(msg('start'))).toEqual({ envId: 'env-1', atMs: 1_700_000_000_123, kind: 'started', message: 'Container started' });
    expect(m.map(msg('oom'))?.kind).toBe('oom_killed');
    expect(m.map(msg('die', { exitCode: '137' }))).toMatchObject({
      kind: 'exited',
      message: 'Container exited with code 137 (OOM killed)',
    });
    expect(m.map(msg('start'))?.kind).toBe('started');
    expect(m.map(msg('die', { exitCode: '0' }))?.message).toBe('Container exited with code 0');
    expect(m.map(msg('destroy'))?.kind).toBe('removed');
  });

  it('drops other actions, unlabelled containers and the moved-aside container of a recreate', () => {
    const m = new EventMapper();
    expect(m.map(msg('kill'))).toBeUndefined();
    expect(m.map({ ...msg('start'), Actor: { ID: 'x', Attributes: { name: 'other' } } })).toBeUndefined();
    expect(m.map(msg('destroy', { name: 'remotegpu-env-1_replaced' }))).toBeUndefined();
  });
});

describe('commitConfig', () => {
  it('restores the catalog image’s env and labels and blanks the agent’s, keeping the Jupyter token', () => {
    const out = commitConfig(
      {
        Env: ['PATH=/custom', 'LANG=C.UTF-8', 'SECRET=s3cret', 'JUPYTER_TOKEN=tok', 'NVIDIA_VISIBLE_DEVICES=GPU-1'],
        Labels: { 'remotegpu.managed': 'true', 'remotegpu.spec-hash': 'abc', team: 'x', maintainer: 'changed' },
      },
      { Env: ['PATH=/usr/bin', 'LANG=C.UTF-8'], Labels: { maintainer: 'vendor' } },
      'env-1',
      'catalog:1',
    );
    expect(out.Env).toEqual(['PATH=/usr/bin', 'LANG=C.UTF-8', 'SECRET=', 'JUPYTER_TOKEN=tok', 'NVIDIA_VISIBLE_DEVICES=']);
    expect(out.Labels).toEqual({
      'remotegpu.managed': '',
      'remotegpu.spec-hash': '',
      team: '',
      maintainer: 'vendor',
      'remotegpu.env-id': 'env-1',
      'remotegpu.image': 'catalog:1',
    });
  });
});

describe('Docker errors', () => {
  it.each([
    ['No such image: nosuch/image:1', 404, 'image_not_found'],
    ['driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:2222 failed: port is already allocated', 500, 'port_conflict'],
    ['driver failed programming external connectivity on endpoint x (abc): Error starting userland proxy: listen tcp4 127.0.0.1:45123: bind: address already in use', 500, 'port_conflict'],
    ['could not select device driver "nvidia" with capabilities: [[gpu]]', 500, 'gpu_driver_missing'],
    ['error gathering device information while adding custom device "/dev/nvidia9": no such file or directory', 500, 'gpu_driver_missing'],
    ['Minimum memory limit allowed is 6MB', 400, 'invalid_spec'],
    ['No such container: x', 404, 'not_found'],
    ['something else broke', 500, 'internal'],
  ] as const)('%s → %s', (message, status, code) => {
    expect(classifyDockerMessage(message, status)).toBe(code);
  });

  it('keeps Docker’s message and reports an unreachable engine', () => {
    const apiError = Object.assign(new Error('(HTTP code 404) no such container - No such image: a:b '), {
      statusCode: 404,
      json: { message: 'No such image: a:b' },
    });
    expect(dockerMessage(apiError)).toBe('No such image: a:b');
    expect(toRuntimeError(apiError)).toMatchObject({ code: 'image_not_found', message: 'No such image: a:b' });
    const down = Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT' });
    expect(toRuntimeError(down).code).toBe('docker_unavailable');
  });
});

describe('statusFromInspect', () => {
  const info = (state: Partial<ContainerInspectInfo['State']>) =>
    ({
      Id: 'abc',
      Config: { Labels: { 'remotegpu.spec-hash': 'h1', 'remotegpu.gpu-uuids': 'GPU-a,GPU-b' } },
      State: {
        Status: 'exited',
        Running: false,
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        Pid: 0,
        ExitCode: 0,
        Error: '',
        StartedAt: '2025-01-02T03:04:05.5Z',
        FinishedAt: '0001-01-01T00:00:00Z',
        ...state,
      },
    }) as unknown as ContainerInspectInfo;

  it('maps state, labels, exit code, OOM and times', () => {
    expect(statusFromInspect('env-1', info({ ExitCode: 137, OOMKilled: true }))).toEqual({
      envId: 'env-1',
      state: 'exited',
      containerId: 'abc',
      specHash: 'h1',
      gpuUuids: ['GPU-a', 'GPU-b'],
      exitCode: 137,
      oomKilled: true,
      startedAtMs: Date.UTC(2025, 0, 2, 3, 4, 5, 500),
      finishedAtMs: 0,
      message: 'OOM killed: the memory limit was reached',
    });
    expect(statusFromInspect('e', info({ Status: 'running', Running: true, Restarting: true })).state).toBe('restarting');
    expect(statusFromInspect('e', info({ Status: 'dead', Dead: true, Error: 'boom' }))).toMatchObject({ state: 'failed', message: 'boom' });
    expect(parseDockerTime('2025-01-02T03:04:05.123456789Z')).toBe(Date.UTC(2025, 0, 2, 3, 4, 5, 123));
  });
});

describe('execArgs', () => {
  const runtime = new DockerRuntime({ docker: new Dockerode({ socketPath: '/run/alt/docker.sock' }), stateDir: '/nonexistent', gpuMode: 'devices', managedBy: 'mapping-no-engine' });

  it('builds a docker exec -it argv on the runtime’s socket, a login shell by default', () => {
    expect(runtime.execArgs('env-1', [])).toEqual([
      'docker', '-H', 'unix:///run/alt/docker.sock', 'exec', '-it', '-e', 'TERM=xterm-256color', 'remotegpu-env-1',
      '/bin/sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi',
    ]);
    expect(runtime.execArgs('env-1', ['nvidia-smi', '-L']).slice(-3)).toEqual(['remotegpu-env-1', 'nvidia-smi', '-L']);
  });

  it('refuses an env id that is not one', () => {
    expect(() => runtime.execArgs('../etc', [])).toThrow(expect.objectContaining({ code: 'invalid_spec' }));
  });
});
