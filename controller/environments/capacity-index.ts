import type { Db } from '../db/database.js';
import { snapshotForScheduling } from '../hosts/scheduling-snapshot.js';
import { afterPlacement, gpusNeeded, isSchedulable, schedule, type HostSnapshot, type PlacementRequest, type ScheduleResult } from '../scheduler/index.js';

/** How many hosts a ranking looks at, gathered best-fit first from the free-GPU buckets. */
const GATHER = 64;

/**
 * This controller process's view of every host's capacity, for picking placement candidates
 * without reading the whole cluster per request. Never trusted for correctness: the placement
 * transaction locks the host and checks it again from the database, and the unique keys catch
 * anything else. A stale entry costs a retry (a host that filled up, went offline or lost a GPU
 * meanwhile, e.g. through another replica or a report) or a fresh read (nothing seems to fit:
 * `placeOnAnyHost` reads every host again before it refuses).
 *
 * Kept current by: the first use (a full read), a full read in the background once the view is
 * older than `maxAgeMs` (other replicas' placements, releases by the reconciler, stop or delete,
 * host reports, new hosts), every host a placement transaction read (its entry is replaced by
 * what that transaction saw, plus what it reserved), the queue's full read once per pass, and
 * claims: a candidate picked is marked taken at once, so this process's concurrent requests rank
 * other GPUs and hosts while its transaction runs.
 *
 * Hosts that take new environments sit in buckets by their count of free GPUs, so a request is
 * ranked on the `GATHER` best-fitting hosts instead of all of them.
 */
export class CapacityIndex {
  private list: HostSnapshot[] = [];
  private readonly pos = new Map<string, number>();
  /** Host ids of schedulable hosts by free (healthy, unallocated) GPU count, any model. */
  private buckets: Set<string>[] = [];
  private readonly bucketOf = new Map<string, number>();
  /** When a placement transaction last updated an entry (a full read that started earlier keeps it). */
  private readonly touched = new Map<string, number>();
  /** Placements in flight in this process, per host: counted as taken while ranking. */
  private readonly claims = new Map<string, { request: PlacementRequest; gpuUuids: readonly string[] }[]>();
  private loadedAt = -Infinity;
  private loading: { startedAt: number; promise: Promise<readonly HostSnapshot[]> } | undefined;

  constructor(
    private readonly db: Db,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The candidates for `request` ranked on the index (loaded on first use; reloaded in the
   * background once older than `maxAgeMs`): the scheduler's result over the best-fitting hosts.
   * Not ok means only that the index sees no room; the caller reads afresh before refusing.
   */
  async rank(request: PlacementRequest): Promise<ScheduleResult> {
    // The first requests share one first read.
    if (this.loadedAt === -Infinity) await (this.loading?.promise ?? this.refresh());
    else if (this.now() - this.loadedAt > this.maxAgeMs && !this.loading) void this.refresh().catch(() => undefined);
    return schedule(request, this.gather(request));
  }

  /**
   * A full read of every host, which replaces the index. Joins a read in flight that started at or
   * after `since` (so concurrent requests that all missed share one read).
   */
  async refresh(since = this.now()): Promise<readonly HostSnapshot[]> {
    return this.refreshFrom(this.db, since);
  }

  /**
   * `refresh` on another handle: the queue's pass reads on the reconciler's pool, never waiting
   * for the API pool the index was built with (nor joining a read on it).
   */
  async readOn(db: Db): Promise<readonly HostSnapshot[]> {
    return this.refreshFrom(db, Infinity);
  }

  private async refreshFrom(db: Db, since: number): Promise<readonly HostSnapshot[]> {
    if (this.loading && this.loading.startedAt >= since) return this.loading.promise;
    const startedAt = this.now();
    const promise = snapshotForScheduling(db).then((hosts) => {
      this.replaceAll(hosts, startedAt);
      return hosts;
    });
    if (db !== this.db) return promise;
    const loading = { startedAt, promise };
    this.loading = loading;
    try {
      return await promise;
    } finally {
      if (this.loading === loading) this.loading = undefined;
    }
  }

  /**
   * Replaces the whole index with a full read that started at `at` (the queue's pass shares its
   * read), but for the entries a placement transaction updated since: those are newer.
   */
  replaceAll(hosts: readonly HostSnapshot[], at = this.now()): void {
    const newer = new Map<string, HostSnapshot>();
    for (const [id, t] of this.touched) {
      const entry = t >= at ? this.list[this.pos.get(id) ?? -1] : undefined;
      if (entry) newer.set(id, entry);
      else this.touched.delete(id);
    }
    this.list = hosts.map((h) => newer.get(h.id) ?? h);
    this.pos.clear();
    this.buckets = [];
    this.bucketOf.clear();
    this.list.forEach((h, i) => {
      this.pos.set(h.id, i);
      this.file(h);
    });
    this.loadedAt = at;
  }

  /** Replaces one host's entry with what a placement transaction read (undefined: the host is gone). */
  update(hostId: string, host: HostSnapshot | undefined): void {
    this.touched.set(hostId, this.now());
    const i = this.pos.get(hostId);
    this.unfile(hostId);
    if (!host) {
      if (i === undefined) return;
      const last = this.list.pop()!;
      this.pos.delete(hostId);
      if (last.id !== hostId) {
        this.list[i] = last;
        this.pos.set(last.id, i);
      }
      return;
    }
    if (i === undefined) {
      this.pos.set(host.id, this.list.length);
      this.list.push(host);
    } else {
      this.list[i] = host;
    }
    this.file(host);
  }

  /**
   * Marks `gpuUuids` and the request's CPU, memory and storage as taken on a host while a placement
   * is in flight, so this process's concurrent requests rank around it. Returns the release, to
   * call once that placement ended (its outcome is in the entry by then, through `update`).
   */
  claim(hostId: string, request: PlacementRequest, gpuUuids: readonly string[]): () => void {
    const claim = { request, gpuUuids };
    let list = this.claims.get(hostId);
    if (!list) this.claims.set(hostId, (list = []));
    list.push(claim);
    this.refile(hostId);
    return () => {
      const current = this.claims.get(hostId);
      const at = current?.indexOf(claim) ?? -1;
      if (at < 0) return;
      current!.splice(at, 1);
      if (current!.length === 0) this.claims.delete(hostId);
      this.refile(hostId);
    };
  }

  /** The entry of one host (tests, and a claim's release). */
  get(hostId: string): HostSnapshot | undefined {
    const i = this.pos.get(hostId);
    return i === undefined ? undefined : this.view(this.list[i]!);
  }

  /**
   * Whether a host's entry has room for `request`, placements in flight not counted (one of them
   * may be the caller's own); unknown hosts: true, the database decides.
   */
  fits(hostId: string, request: PlacementRequest): boolean {
    const i = this.pos.get(hostId);
    return i === undefined || schedule(request, [this.list[i]!]).ok;
  }

  /**
   * Every host as ranking sees it now (this process's placements in flight taken), loaded on first
   * use and read again in the background once older than `maxAgeMs`: what users are shown as free
   * capacity (GET /capacity). A hint, like the index itself; placement decides on the database.
   */
  async snapshot(): Promise<HostSnapshot[]> {
    if (this.loadedAt === -Infinity) await (this.loading?.promise ?? this.refresh());
    else if (this.now() - this.loadedAt > this.maxAgeMs && !this.loading) void this.refresh().catch(() => undefined);
    return this.list.map((h) => this.view(h));
  }

  /** Every host of the index (for the scheduler's message when nothing fits). */
  all(): readonly HostSnapshot[] {
    return this.list;
  }

  /**
   * The best-fitting schedulable hosts for `request`: walks the buckets from the request's GPU
   * count up and keeps hosts with room for its CPU, memory and storage, at most `GATHER`.
   */
  private gather(request: PlacementRequest): HostSnapshot[] {
    const out: HostSnapshot[] = [];
    for (let free = gpusNeeded(request); free < this.buckets.length && out.length < GATHER; free++) {
      for (const id of this.buckets[free] ?? []) {
        const h = this.view(this.list[this.pos.get(id)!]!);
        if (roomFor(request, h)) out.push(h);
        if (out.length >= GATHER) break;
      }
    }
    return out;
  }

  /** A host as ranking sees it: its entry with this process's placements in flight taken. */
  private view(h: HostSnapshot): HostSnapshot {
    const claims = this.claims.get(h.id);
    if (!claims) return h;
    return claims.reduce((acc, c) => afterPlacement([acc], h.id, c.request, c.gpuUuids)[0]!, h);
  }

  private refile(hostId: string): void {
    const i = this.pos.get(hostId);
    this.unfile(hostId);
    if (i !== undefined) this.file(this.list[i]!);
  }

  private file(entry: HostSnapshot): void {
    if (!isSchedulable(entry)) return;
    const h = this.view(entry);
    const free = h.gpus.reduce((n, g) => (g.healthy && !g.allocated ? n + 1 : n), 0);
    (this.buckets[free] ??= new Set()).add(h.id);
    this.bucketOf.set(h.id, free);
  }

  private unfile(hostId: string): void {
    const b = this.bucketOf.get(hostId);
    if (b === undefined) return;
    this.buckets[b]!.delete(hostId);
    this.bucketOf.delete(hostId);
  }
}

/** Whether a host has the CPU, memory and storage a request needs (what asks for nothing fits). */
function roomFor(r: PlacementRequest, h: HostSnapshot): boolean {
  const fits = (need: number, total: number, used: number) => !(need > 0) || need <= total - used;
  return fits(r.cpuCores, h.cpuCores, h.allocatedCpuCores) && fits(r.memoryBytes, h.memoryBytes, h.allocatedMemoryBytes) && fits(r.storageBytes, h.storageBytes, h.allocatedStorageBytes);
}
