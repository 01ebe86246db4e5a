import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../agent/runtime/docker.js';
import type { LogLine } from '../../../agent/runtime/types.js';
import { DOCKER_SKIP_MESSAGE, dockerAvailable, dockerExec, ensureBusyboxImage, testDocker, releaseRunDir, testRunDir, testNamespace } from '../../helpers/docker.js';
import { envSpec } from './env-spec.js';
import { waitFor } from './wait.js';

const HAVE_DOCKER = await dockerAvailable();
if (!HAVE_DOCKER) console.warn(DOCKER_SKIP_MESSAGE);

/** This file's own label namespace (never `npm start`'s containers, nor another file's). */
const NAMESPACE = testNamespace('rt-logs');

/** Open unix-socket handles of this process (Docker API connections). */
const openSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'PipeWrap').length;

describe.skipIf(!HAVE_DOCKER)('DockerRuntime.logs (real Docker)', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let stateDir: string;
  let runtime: DockerRuntime;
  let startedAtMs: number;
  const spec = envSpec({
    env: {
      TEST_CMD:
        'echo err-1 >&2; sleep 0.5; for i in 1 2 3 4 5; do echo line-$i; done; ' +
        'while [ ! -f /tmp/go ]; do sleep 0.2; done; echo after-go; ' +
        'trap "exit 0" TERM; while :; do sleep 1 & wait $!; done',
    },
  });

  async function collect(iterable: AsyncIterable<LogLine>): Promise<LogLine[]> {
    const lines: LogLine[] = [];
    for await (const line of iterable) lines.push(line);
    return lines;
  }

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    stateDir = await mkdtemp(join(tmpdir(), 'remotegpu-state-'));
    runtime = new DockerRuntime({ runDir, docker, stateDir, managedBy: NAMESPACE, gpuMode: 'devices' });
    startedAtMs = (await runtime.apply(spec)).status.startedAtMs;
    const none = () => new AbortController().signal;
    await waitFor(async () => (await collect(runtime.logs(spec.envId, { follow: false, signal: none() }))).length >= 6);
  });

  afterAll(async () => {
    await releaseRunDir(runDir);
    if (runtime) await runtime.remove(spec.envId).catch(() => undefined);
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('tail N gives the last N lines with Docker’s timestamps', async () => {
    const lines = await collect(runtime.logs(spec.envId, { tail: 3, follow: false, signal: new AbortController().signal }));
    expect(lines.map((l) => [l.stream, l.text])).toEqual([
      ['stdout', 'line-3'],
      ['stdout', 'line-4'],
      ['stdout', 'line-5'],
    ]);
    for (const l of lines) {
      expect(l.atMs).toBeGreaterThanOrEqual(startedAtMs - 1000);
      expect(l.atMs).toBeLessThanOrEqual(Date.now() + 1000);
    }
    const all = await collect(runtime.logs(spec.envId, { follow: false, signal: new AbortController().signal }));
    expect(all[0]).toMatchObject({ stream: 'stderr', text: 'err-1' });
    expect(all).toHaveLength(6);
    expect(await collect(runtime.logs(spec.envId, { tail: 0, follow: false, signal: new AbortController().signal }))).toEqual([]);
  });

  it('follow receives new lines and ends, with its socket closed, when the signal aborts', async () => {
    const baseline = openSockets();
    const ac = new AbortController();
    const it = runtime.logs(spec.envId, { tail: 1, follow: true, signal: ac.signal })[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ text: 'line-5' });
    expect(openSockets()).toBe(baseline + 1);

    await dockerExec(docker, `remotegpu-${spec.envId}`, ['touch', '/tmp/go']);
    expect((await it.next()).value).toMatchObject({ stream: 'stdout', text: 'after-go' });

    const pending = it.next();
    ac.abort();
    expect(await pending).toEqual({ done: true, value: undefined });
    await waitFor(() => openSockets() === baseline);
    expect(openSockets()).toBe(baseline);
  });

  it('an already aborted signal yields nothing and opens no stream', async () => {
    const ac = new AbortController();
    ac.abort();
    expect(await collect(runtime.logs(spec.envId, { follow: true, signal: ac.signal }))).toEqual([]);
  });
});
