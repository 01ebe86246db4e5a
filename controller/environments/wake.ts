/**
 * The explicit signal from whoever changes desired state (the API's services, the host observer)
 * to whoever acts on it (the reconciler): "look again soon". It carries no data: the database is
 * the only source of what changed. Built first in the composition root, so no component needs a
 * reference to the one that listens.
 */
export class WakeSignal {
  private readonly listeners: (() => void)[] = [];

  /** Asks every listener to act soon. Never throws and never waits. */
  notify(): void {
    for (const listener of this.listeners) listener();
  }

  /** Registers a listener (the reconciler, once, when it is built). */
  listen(listener: () => void): void {
    this.listeners.push(listener);
  }
}
