import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AFTER_STOP_SLACK_BYTES, graceSlackBytes, judgeRootfs, limitReason, runOf, type RootfsTrack } from '../../agent/rootfs-judge.js';
import { RootfsWatch } from '../../agent/rootfs-watch.js';
import type { LifecycleEvent, ObservedStatus } from '../../agent/runtime/types.js';
import { environmentUsage } from '../../agent/usage.js';

// The writable-layer limit: the pure judge (warning once per crossing at 90%, a stop at the limit,
// a grace period for a container that starts over it, in which the layer may not grow) and the
// watch loop over a fake runtime (measured figures cached for the reporter, stop reasons and
// over-limit marks kept across an agent restart, every tick measured during a grace period).

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const policy = { limitBytes: 10 * GiB, graceMs: 5 * 60_000 };

describe('judgeRootfs', () => {
  const at = (usedBytes: number, nowMs: number, run = 'c1@1000', overBefore = false) => ({ run, usedBytes, dataPath: '/root/workspace', nowMs, overBefore });

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
        'Stopping the environment: writable layer 10.2 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT); files outside /root/workspace count against it. ' +
        'Start it again and delete some within 5 minutes: until it is under the limit, it is stopped at once if the layer grows',
    });
  });

  it('gives a container that starts over the limit a grace period, then stops it if still over', () => {
    const started = judgeRootfs(undefined, at(10.5 * GiB, 0, 'c1@2000'), policy);
    expect(started.action.kind).toBe('grace');
    expect(started.action.kind === 'grace' && started.action.message).toBe(
      'Writable layer uses 10.5 GiB, over its 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT); files outside /root/workspace count against it. ' +
        'Delete some within 5 minutes or the environment will be stopped again; it is stopped at once if the layer grows past 10.6 GiB.',
    );
    expect(started.track.graceCapBytes).toBe(10.5 * GiB + Math.floor(0.1 * GiB)); // 1% of the limit
    expect(started.overLimit).toBe(true);
    const during = judgeRootfs(started.track, at(10.55 * GiB, 4 * 60_000, 'c1@2000'), policy);
    expect(during.action.kind).toBe('none');
    expect(during.overLimit).toBe(true);
    const after = judgeRootfs(during.track, at(10.55 * GiB, 5 * 60_000 + 1, 'c1@2000'), policy);
    expect(after.action).toEqual({
      kind: 'stop',
      reason: 'writable layer 10.6 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT)',
      message:
        'Stopping the environment: writable layer 10.6 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT); files outside /root/workspace count against it. ' +
        'Start it again and delete some within 5 minutes: until it is under the limit, it is stopped at once if the layer grows',
    });
    expect(after.overLimit).toBe(true);
  });

  it('stops at once a layer that grows past what it held when the grace began (plus 1% of the limit)', () => {
    const limit = { limitBytes: 50 * GiB, graceMs: 5 * 60_000 };
    const started = judgeRootfs(undefined, at(60 * GiB, 0), limit);
    expect(started.action.kind).toBe('grace');
    // The reviewer's case: 500 GiB during the grace period of a 50 GiB limit.
    const huge = judgeRootfs(started.track, at(500 * GiB, 60_000), limit);
    expect(huge.action).toMatchObject({ kind: 'stop', reason: 'writable layer 500 GiB exceeded the 50 GiB limit (REMOTEGPU_ROOTFS_LIMIT)' });
    expect(huge.action.kind === 'stop' && huge.action.message).toContain('and grew past 60.5 GiB during its grace period');
    // 0.5 GiB (1%) of slack: up to it nothing happens, past it a stop.
    const slack = graceSlackBytes(50 * GiB, false);
    expect(slack).toBe(Math.floor(0.5 * GiB));
    expect(judgeRootfs(started.track, at(60 * GiB + slack, 10_000), limit).action.kind).toBe('none');
    expect(judgeRootfs(started.track, at(60 * GiB + slack + 1, 10_000), limit).action.kind).toBe('stop');
    // Shrinking (still over) is what the grace period is for.
    expect(judgeRootfs(started.track, at(55 * GiB, 10_000), limit).action.kind).toBe('none');
  });

  it('gives a run after one that was over the limit a grace period only to delete files: at most 16 MiB of growth', () => {
    const limit = { limitBytes: 50 * GiB, graceMs: 5 * 60_000 };
    expect(graceSlackBytes(50 * GiB, true)).toBe(AFTER_STOP_SLACK_BYTES);
    expect(graceSlackBytes(100 * MiB, true)).toBe(Math.floor(MiB)); // 1% of a small limit is less
    // Stopped at the limit...
    const before = judgeRootfs(undefined, at(40 * GiB, 0, 'c1@1'), limit);
    const stopped = judgeRootfs(before.track, at(50.5 * GiB, 60_000, 'c1@1'), limit);
    expect(stopped.action.kind).toBe('stop');
    expect(stopped.overLimit).toBe(true);
    // ...started again: the grace notice, with 16 MiB of room.
    const again = judgeRootfs(stopped.track, at(51 * GiB, 120_000, 'c1@2', true), limit);
    expect(again.action.kind).toBe('grace');
    expect(again.action.kind === 'grace' && again.action.message).toContain('it is stopped at once if the layer grows past 51 GiB');
    expect(again.track.graceCapBytes).toBe(51 * GiB + 16 * MiB);
    expect(judgeRootfs(again.track, at(51 * GiB + 10 * MiB, 130_000, 'c1@2', true), limit).action.kind).toBe('none');
    expect(judgeRootfs(again.track, at(51 * GiB + 17 * MiB, 130_000, 'c1@2', true), limit).action.kind).toBe('stop');
    // Deleting is fine, and getting under the limit ends the grace period and forgets the earlier run.
    const cleaned = judgeRootfs(again.track, at(49 * GiB, 140_000, 'c1@2', true), limit);
    expect(cleaned.action.kind).toBe('none');
    expect(cleaned.overLimit).toBe(false);
    expect(cleaned.track.graceUntilMs).toBe(0);
  });

  it('remembers an environment over the limit until it is measured under it', () => {
    const r = (used: number, overBefore: boolean, prev?: RootfsTrack, run = 'c1@1') => judgeRootfs(prev, at(used, 0, run, overBefore), policy);
    expect(r(1 * GiB, false).overLimit).toBe(false);
    expect(r(9.5 * GiB, true).overLimit).toBe(false); // under the limit, even past 90%: forgotten
    expect(r(11 * GiB, false).overLimit).toBe(true); // grace
    expect(judgeRootfs(undefined, at(11 * GiB, 0), { limitBytes: 10 * GiB, graceMs: 0 }).overLimit).toBe(true); // stop
    expect(judgeRootfs(undefined, at(11 * GiB, 0, 'c1@1', true), { limitBytes: 0, graceMs: 1 }).overLimit).toBe(false); // no limit
  });

  it('says which part of the layer a recreate committed, since deleting those files does not free it', () => {
    const m = { ...at(10.5 * GiB, 0), committedBytes: 8 * GiB };
    const grace = judgeRootfs(undefined, m, policy);
    expect(grace.action.kind === 'grace' && grace.action.message).toContain(
      "grows past 10.6 GiB. 8 GiB of it was kept by a recreate in the environment's image, which deleting those files does not free.",
    );
    const warn = judgeRootfs(undefined, { ...m, usedBytes: 9.5 * GiB }, policy);
    expect(warn.action.kind === 'warn' && warn.action.message).toContain('count against it. 8 GiB of it was kept by a recreate');
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
    const next = judgeRootfs(stopped.track, at(11 * GiB, 2, 'c1@5000', stopped.overLimit), policy);
    expect(next.action.kind).toBe('grace');
    expect(next.track.graceCapBytes).toBe(11 * GiB + 16 * MiB);
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

  function setup(sizes: Map<string, number>, stateDir?: string, tickMs?: number, limitBytes = 100 * MiB) {
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
        return { usedBytes: used, layerBytes: used, committedBytes: 0, dataPath: '/root/workspace' };
      },
      limitBytes,
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

  it('measures every tick during a grace period, stops a layer that grows in it, and gives the next runs a grace period only to delete files, across an agent restart', async () => {
    const limit = 4 * GiB;
    const sizes = new Map([['env-a', 4.5 * GiB]]);
    const t = setup(sizes, undefined, 10_000, limit);
    const marks = () => JSON.parse(readFileSync(path.join(t.dir, 'rootfs-stops.json'), 'utf8')) as Record<string, { reason: string }>;
    t.runtime.containers.set('env-a', status('env-a', { startedAtMs: 1000 }));
    await t.watch.runOnce();
    expect(t.events.map((e) => e.kind)).toEqual(['rootfs_warning']);
    expect(t.events[0]!.message).toContain('it is stopped at once if the layer grows past 4.5 GiB'); // + 41 MiB, 1% of the limit
    expect(marks()['env-a']).toEqual({ reason: '', atMs: 10_000 });

    // Within the grace period each tick measures; growing by less than 1% of the limit is allowed.
    t.advance(10_000);
    sizes.set('env-a', 4.5 * GiB + 30 * MiB);
    await t.watch.runOnce();
    expect(t.measured).toHaveLength(2);
    expect(t.runtime.stops).toEqual([]);

    // The user stops it and starts it again: a new run, over the limit again, whose grace allows 16 MiB.
    t.runtime.containers.set('env-a', status('env-a', { startedAtMs: 2000 }));
    t.advance(10_000);
    await t.watch.runOnce();
    expect(t.events.map((e) => e.kind)).toEqual(['rootfs_warning', 'rootfs_warning']);
    t.advance(10_000);
    sizes.set('env-a', 4.5 * GiB + 47 * MiB);
    await t.watch.runOnce();
    expect(t.runtime.stops).toEqual(['env-a']);
    expect(t.events.map((e) => e.kind)).toEqual(['rootfs_warning', 'rootfs_warning', 'rootfs_limit']);
    expect(t.events[2]!.message).toContain('and grew past 4.5 GiB during its grace period');
    const reason = t.watch.stopReason('env-a');
    expect(marks()['env-a']!.reason).toBe(reason);

    // A new agent, the environment started again: still only 16 MiB of growth.
    const again = setup(sizes, t.dir, 10_000, limit);
    await again.watch.load();
    again.runtime.containers.set('env-a', status('env-a', { startedAtMs: Date.now() + 1_000_000 }));
    await again.watch.runOnce();
    expect(again.events.map((e) => e.kind)).toEqual(['rootfs_warning']);
    expect(again.watch.stopReason('env-a')).toBeUndefined();
    expect(marks()['env-a']!.reason).toBe(''); // reported no more, still remembered
    again.advance(10_000);
    sizes.set('env-a', 4.5 * GiB + 64 * MiB);
    await again.watch.runOnce();
    expect(again.runtime.stops).toEqual(['env-a']);

    // Started again and cleaned up under the limit: forgotten, a later start over it gets 1% again.
    again.runtime.containers.set('env-a', status('env-a', { startedAtMs: Date.now() + 2_000_000 }));
    sizes.set('env-a', 3 * GiB);
    again.advance(10_000);
    await again.watch.runOnce();
    expect(marks()).toEqual({});
    expect(again.events.map((e) => e.kind)).toEqual(['rootfs_warning', 'rootfs_limit']);
  });

  it('measures a running container once per interval again after its grace period', async () => {
    const sizes = new Map([['env-a', 110 * MiB]]);
    const t = setup(sizes, undefined, 10_000);
    t.runtime.containers.set('env-a', status('env-a'));
    await t.watch.runOnce();
    sizes.set('env-a', 90 * MiB); // cleaned up: under the limit, the grace period is spent
    t.advance(10_000);
    await t.watch.runOnce();
    expect(t.measured).toHaveLength(2);
    t.advance(10_000);
    await t.watch.runOnce();
    expect(t.measured).toHaveLength(2);
    t.advance(50_000);
    await t.watch.runOnce();
    expect(t.measured).toHaveLength(3);
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
