import type Dockerode from 'dockerode';
import { toRuntimeError } from './docker-errors.js';
import { RuntimeError } from './errors.js';
import { LABEL, containerName } from './docker-names.js';
import type { LifecycleEvent } from './types.js';

/** One message of Docker's `GET /events` stream (the fields read here). */
export interface DockerEventMessage {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/**
 * Maps Docker container events to lifecycle events. It remembers OOM kills per container so the
 * following `die` says so. Events of the transient container of a recreate (renamed away from the
 * environment's name) are dropped. No I/O.
 */
export class EventMapper {
  private readonly oomKilled = new Set<string>();

  /** The lifecycle event for `msg`, or undefined when it is not one. */
  map(msg: DockerEventMessage): LifecycleEvent | undefined {
    const attrs = msg.Actor?.Attributes ?? {};
    const envId = attrs[LABEL.envId];
    const id = msg.Actor?.ID ?? '';
    if (msg.Type !== 'container' || !envId || attrs.name !== containerName(envId)) return undefined;
    const atMs = msg.timeNano ? Math.floor(msg.timeNano / 1e6) : (msg.time ?? 0) * 1000;
    const event = (kind: LifecycleEvent['kind'], message: string): LifecycleEvent => ({ envId, atMs, kind, message });
    switch (msg.Action) {
      case 'create':
        return event('created', 'Container created');
      case 'start':
        this.oomKilled.delete(id);
        return event('started', 'Container started');
      case 'oom':
        this.oomKilled.add(id);
        return event('oom_killed', 'A process was killed: out of memory (memory limit reached)');
      case 'die': {
        const oom = this.oomKilled.delete(id);
        return event('exited', `Container exited with code ${attrs.exitCode ?? '?'}${oom ? ' (OOM killed)' : ''}`);
      }
      case 'destroy':
        this.oomKilled.delete(id);
        return event('removed', 'Container removed');
      default:
        return undefined;
    }
  }
}

/** Docker's `since` format: seconds with a fractional part. */
function dockerSince(ms: number): string {
  return `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}`;
}

/**
 * Lifecycle events of managed containers from `sinceMs` on (Docker replays what it saw since then,
 * so nothing between the caller's call and the subscription is lost), until `signal` aborts.
 * Throws RuntimeError 'docker_unavailable' when Docker ends the stream (e.g. the engine restarted).
 */
export async function* dockerEvents(docker: Dockerode, signal: AbortSignal, sinceMs: number, managedBy = 'true'): AsyncGenerator<LifecycleEvent> {
  if (signal.aborted) return;
  let stream: NodeJS.ReadableStream & { destroy(): void };
  try {
    // dockerode passes `since` through as is; its types only allow whole seconds.
    stream = (await docker.getEvents({
      since: dockerSince(sinceMs),
      filters: {
        type: ['container'],
        label: [`${LABEL.managed}=${managedBy}`],
        event: ['create', 'start', 'oom', 'die', 'destroy'],
      },
      abortSignal: signal,
    } as unknown as Dockerode.GetEventsOptions)) as unknown as typeof stream;
  } catch (err) {
    if (signal.aborted) return;
    throw toRuntimeError(err, 'subscribing to events');
  }
  const onAbort = () => stream.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  const mapper = new EventMapper();
  let pending = '';
  try {
    for await (const chunk of stream) {
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (!line) continue;
        const event = mapper.map(JSON.parse(line) as DockerEventMessage);
        if (event && !signal.aborted) yield event;
      }
    }
    if (!signal.aborted) throw new RuntimeError('docker_unavailable', 'Docker closed the event stream');
  } catch (err) {
    if (signal.aborted) return;
    throw toRuntimeError(err, 'reading events');
  } finally {
    signal.removeEventListener('abort', onAbort);
    stream.destroy();
  }
}
