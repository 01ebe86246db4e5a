/** Runs tasks one at a time per key (per environment), in call order; other keys run freely. */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` after every earlier task for `key` has settled; returns (or throws) what it does. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(() => fn());
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

/**
 * Compensations registered while a multi-step operation runs; `run` undoes them newest first
 * when it fails. A failing compensation is reported to `onError` and the rest still run.
 */
export class UndoStack {
  private readonly steps: { what: string; fn: () => Promise<unknown> }[] = [];

  push(what: string, fn: () => Promise<unknown>): void {
    this.steps.push({ what, fn });
  }

  /** Forgets every step (the operation succeeded). */
  clear(): void {
    this.steps.length = 0;
  }

  async run(onError: (what: string, err: unknown) => void): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        onError(step.what, err);
      }
    }
  }
}
