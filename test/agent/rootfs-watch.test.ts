import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { judgeRootfs, limitReason, RootfsWatch, runOf, type RootfsTrack } from '../../agent/rootfs-watch.js';
import type { LifecycleEvent, ObservedStatus } from '../../agent/runtime/types.js';
import { environmentUsage } from '../../agent/usage.js';

// The writable-layer limit: the pure judge (warning once per crossing at 90%, a stop at the limit,
// a grace period for a container that starts over it) and the watch loop over a fake runtime
// (measured figures cached for the reporter, stop reasons kept across an agent restart).

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const policy = { limitBytes: 10 * GiB, graceMs: 5 * 60_000 };

describe('judgeRootfs', () => {
  const at = (usedBytes: number, nowMs: number, run = 'c1@1000') => ({ run, usedBytes, dataPath: '/root/workspace', nowMs });

  it('says nothing under 90%, warns once when it passes 90%, and warns again only after it fell back under 85%', () => {
    let track: RootfsTrack | undefined;
    const step = (used: number, now: number) => {
      const r = judgeRootfs(track, at(used, now), policy);
      track = r.track;
      return r.action;
    };
    expect(step(1 * GiB, 0)).toEqual({ kind: 'none' });
    const warn = step(9.1 * GiB, 60_000);
    expect(warn).toEqual({
      kind: 'warn',
      message:
        'Writable layer uses 9.1 GiB of its 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT); files outside /root/workspace count against it. The environment will be stopped at the limit',
    });
    expect(step(9.5 * GiB, 120_000).kind).toBe('none');
    expect(step(8.8 * GiB, 180_000).kind).toBe('none'); // between 85% and 90%: still the same crossing
    expect(step(9.2 * GiB, 240_000).kind).toBe('none');
    expect(step(8 * GiB, 300_000).kind).toBe('none'); // under 85%: re-armed
    expect(step(9.3 * GiB, 360_000).kind).toBe('warn');
  });

  it('stops a running container at the limit with a reason the controller can show', () => {
    const first = judgeRootfs(undefined, at(2 * GiB, 0), policy);
    const { action } = judgeRootfs(first.track, at(10.2 * GiB, 60_000), policy);
    expect(action).toEqual({
      kind: 'stop',
      reason: 'writable layer 10.2 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT)',
      message:
        'Stopping the environment: writable layer 10.2 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT); files outside /root/workspace count against it. Start it again and delete some within 5 minutes',
    });
  });

  it('gives a container that starts over the limit a grace period, then stops it if still over', () => {
    const started = judgeRootfs(undefined, at(10.5 * GiB, 0, 'c1@2000'), policy);
    expect(started.action.kind).toBe('grace');
    expect(started.action.kind === 'grace' && started.action.message).toBe(
      'Writable layer uses 10.5 GiB, over its 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT); files outside /root/workspace count against it. Delete some within 5 minutes or the environment will be stopped again',
    );
    const during = judgeRootfs(started.track, at(10.6 * GiB, 4 * 60_000, 'c1@2000'), policy);
    expect(during.action.kind).toBe('none');
    const after = judgeRootfs(during.track, at(10.6 * GiB, 5 * 60_000 + 1, 'c1@2000'), policy);
    expect(after.action.kind).toBe('stop');
  });

  it('ends the grace period once the layer got under the limit: crossing it again stops at once', () => {
    const started = judgeRootfs(undefined, at(10.5 * GiB, 0), policy);
    const cleaned = judgeRootfs(started.track, at(9.5 * GiB, 60_000), policy);
    expect(cleaned.action.kind).toBe('none'); // already warned by the grace notice
    expect(judgeRootfs(cleaned.track, at(10.1 * GiB, 120_000), policy).action.kind).toBe('stop');
  });

  it('treats a new run (restart, new container) as a first measurement', () => {
    const stopped = judgeRootfs(judgeRootfs(undefined, at(1 * GiB, 0), policy).track, at(11 * GiB, 1), policy);
    expect(stopped.action.kind).toBe('stop');
    expect(judgeRootfs(stopped.track, at(11 * GiB, 2, 'c1@5000'), policy).action.kind).toBe('grace');
  });

  it('only measures with limit 0 (REMOTEGPU_ROOTFS_LIMIT=0)', () => {
    expect(judgeRootfs(undefined, at(100 * GiB, 0), { limitBytes: 0, graceMs: 1 }).action).toEqual({ kind: 'none' });
  });

  it('stops at once when there is no grace period', () => {
    expect(judgeRootfs(undefined, at(11 * GiB, 0), { limitBytes: 10 * GiB, graceMs: 0 }).action.kind).toBe('stop');
  });

  it('names the limit in bytes when it is small', () => {
    expect(limitReason(30 * MiB, 24 * MiB)).toBe('writable layer 30 MiB exceeded the 24 MiB limit (REMOTEGPU_ROOTFS_LIMIT)');
  });
});

function status(envId: string, overrides: Partial<ObservedStatus> = {}): ObservedStatus {
  return { envId, state: 'running', containerId: `c-${envId}`, specHash: '', gpuUuids: [], exitCode: 0, oomKilled: false, startedAtMs: 1000, finishedAtMs: 0, message: '', ...overrides };
}

/** A runtime of plain records: `stop` turns a container exited. */
class FakeRuntime {
  readonly containers = new Map<string, ObservedStatus>();
  readonly stops: string[] = [];
  async list(): Promise<ObservedStatus[]> {
    return [...this.containers.values()];
  }
  async stop(envId: string): Promise<ObservedStatus> {
    this.stops.push(envId);
    const s = { ...this.containers.get(envId)!, state: 'exited' as const, exitCode: 143, finishedAtMs: Date.now() };
    this.containers.set(envId, s);
    return s;
  }
}

describe('RootfsWatch', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function setup(sizes: Map<string, number>, stateDir?: string, tickMs?: number) {
    const dir = stateDir ?? mkdtempSync(path.join(tmpdir(), 'rgpu-rootfs-'));
    if (!stateDir) dirs.push(dir);
    const runtime = new FakeRuntime();
    const events: LifecycleEvent[] = [];
    const measured: string[] = [];
    let now = 10_000;
    const watch = new RootfsWatch({
      runtime,
      measure: async (containerId, envId) => {
        measured.push(containerId);
        const used = sizes.get(envId);
        if (used === undefined) throw new Error('no such container');
        return { usedBytes: used, dataPath: '/root/workspace' };
      },
      limitBytes: 100 * MiB,
      intervalMs: 60_000,
      ...(tickMs ? { tickMs } : {}),
      graceMs: 5 * 60_000,
      stateDir: dir,
      onEvent: (e) => events.push(e),
      logger: pino({ level: 'silent' }),
      now: () => now,
    });
    return { dir, runtime, events, measured, watch, advance: (ms: number) => (now += ms) };
  }

  it('measures running containers once per interval and stopped ones once, and caches the figures', async () => {
    const sizes = new Map([
      ['env-a', 10 * MiB],
      ['env-b', 20 * MiB],
    ]);
    const t = setup(sizes);
    t.runtime.containers.set('env-a', status('env-a'));
    t.runtime.containers.set('env-b', status('env-b', { state: 'exited', finishedAtMs: 2000 }));
    await t.watch.runOnce(); // passes by hand, no loop
    expect(t.measured.sort()).toEqual(['c-env-a', 'c-env-b']);
    expect(t.watch.rootfsUsedBytes('env-a')).toBe(10 * MiB);
    expect(t.watch.rootfsUsedBytes('env-b')).toBe(20 * MiB);

    t.advance(30_000);
    await t.watch.runOnce();
    expect(t.measured).toHaveLength(2); // nothing due yet
    t.advance(30_000);
    sizes.set('env-a', 12 * MiB);
    await t.watch.runOnce();
    expect(t.measured.filter((c) => c === 'c-env-a')).toHaveLength(2);
    expect(t.measured.filter((c) => c === 'c-env-b')).toHaveLength(1);
    expect(t.watch.rootfsUsedBytes('env-a')).toBe(12 * MiB);

    t.runtime.containers.delete('env-b');
    await t.watch.runOnce();
    expect(t.watch.rootfsUsedBytes('env-b')).toBeUndefined();
  });

  it('warns at 90%, stops at the limit with the reason reported until the container runs again, and keeps the reason across a restart of the agent', async () => {
    const sizes = new Map([['env-a', 10 * MiB]]);
    const t = setup(sizes);
    t.runtime.containers.set('env-a', status('env-a'));
    await t.watch.runOnce();
    sizes.set('env-a', 95 * MiB);
    t.advance(60_000);
    await t.watch.runOnce();
    expect(t.events.map((e) => e.kind)).toEqual(['rootfs_warning']);
    expect(t.events[0]!.message).toContain('Writable layer uses 95 MiB of its 100 MiB limit');

    sizes.set('env-a', 101 * MiB);
    t.advance(60_000);
    await t.watch.runOnce();
    expect(t.runtime.stops).toEqual(['env-a']);
    expect(t.events.map((e) => e.kind)).toEqual(['rootfs_warning', 'rootfs_limit']);
    const reason = 'writable layer 101 MiB exceeded the 100 MiB limit (REMOTEGPU_ROOTFS_LIMIT)';
    expect(t.watch.stopReason('env-a')).toBe(reason);
    expect(JSON.parse(readFileSync(path.join(t.dir, 'rootfs-stops.json'), 'utf8'))['env-a'].reason).toBe(reason);

    // What the reporter sends: the exited container with its reason and last figure.
    const [exited] = await t.runtime.list();
    const usage = await environmentUsage([exited!], '/nonexistent-run-dir', t.watch);
    expect(usage.get('env-a')).toEqual({ storageUsedBytes: undefined, rootfsUsedBytes: 101 * MiB, stopReason: reason });

    // A restarted agent still knows why it stopped it.
    const again = setup(sizes, t.dir);
    again.runtime.containers.set('env-a', exited!);
    await again.watch.load();
    expect(again.watch.stopReason('env-a')).toBe(reason);

    // Started again (a new run, over the limit): the reason is forgotten, the grace notice given, no stop yet.
    again.runtime.containers.set('env-a', status('env-a', { startedAtMs: Date.now() + 1_000_000 }));
    await again.watch.runOnce();
    expect(again.watch.stopReason('env-a')).toBeUndefined();
    expect(again.events.map((e) => e.kind)).toEqual(['rootfs_warning']);
    expect(again.events[0]!.message).toContain('over its 100 MiB limit');
    expect(again.runtime.stops).toEqual([]);
    const running = await environmentUsage(await again.runtime.list(), '/nonexistent-run-dir', again.watch);
    expect(running.get('env-a')?.stopReason).toBeUndefined();

    // Still over when the grace period ends: stopped again.
    again.advance(5 * 60_000 + 1);
    await again.watch.runOnce();
    expect(again.runtime.stops).toEqual(['env-a']);
  });

  it('runs its loop until stopped: a container that starts is measured within a tick, a running one once per interval', async () => {
    const t = setup(
      new Map([
        ['env-a', 1 * MiB],
        ['env-b', 2 * MiB],
      ]),
      undefined,
      20,
    );
    const until = async (check: () => boolean) => {
      for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
    };
    t.runtime.containers.set('env-a', status('env-a'));
    await t.watch.start();
    await until(() => t.measured.length > 0);
    t.runtime.containers.set('env-b', status('env-b'));
    await until(() => t.measured.length > 1);
    await new Promise((r) => setTimeout(r, 60)); // a few more ticks: nothing due (the clock stands still)
    await t.watch.stop();
    expect(t.measured).toEqual(['c-env-a', 'c-env-b']);
  });

  it('identifies a run by container and start time', () => {
    expect(runOf({ containerId: 'abc', startedAtMs: 5 })).toBe('abc@5');
  });
});
