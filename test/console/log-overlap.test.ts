import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module of the console's assets (no types); the browser loads the same file.
import { LogOverlap } from '../../controller/console/assets/log-overlap.js';

/** Feeds `lines` and returns everything shown. */
const feed = (o: InstanceType<typeof LogOverlap>, lines: string[]) => lines.flatMap((l) => o.accept(l) as string[]);

describe('LogOverlap (live logs after an EventSource reconnect)', () => {
  it('shows every line, repeated ones included, while connected', () => {
    expect(feed(new LogOverlap(), ['a', 'a', 'b', 'a'])).toEqual(['a', 'a', 'b', 'a']);
  });

  it('skips the replayed tail and shows the lines that came after it', () => {
    const o = new LogOverlap();
    feed(o, ['x', 'y', 'z']);
    o.reconnected();
    expect(feed(o, ['y', 'z', 'new-1', 'new-2'])).toEqual(['new-1', 'new-2']);
  });

  it('shows a line that really repeats one shown before the reconnect', () => {
    const o = new LogOverlap();
    feed(o, ['step', 'ok', 'step']);
    o.reconnected();
    // The replay re-sends the whole tail, then the program prints "step" and "ok" again.
    expect(feed(o, ['step', 'ok', 'step', 'step', 'ok'])).toEqual(['step', 'ok']);
    expect(feed(o, ['ok'])).toEqual(['ok']);
  });

  it('takes the longest overlap when the shown lines are all the same', () => {
    const o = new LogOverlap();
    feed(o, ['a', 'a', 'a']);
    o.reconnected();
    expect(feed(o, ['a', 'a', 'a', 'a'])).toEqual(['a']);
  });

  it('shows everything when the replay does not overlap (more new lines than the tail holds)', () => {
    const o = new LogOverlap(3);
    feed(o, ['a', 'b', 'c']);
    o.reconnected();
    expect(feed(o, ['b', 'x', 'y', 'z'])).toEqual(['b', 'x', 'y', 'z']);
  });

  it('matches only once per reconnect: later repeats of the tail are shown', () => {
    const o = new LogOverlap();
    feed(o, ['p', 'q']);
    o.reconnected();
    expect(feed(o, ['p', 'q'])).toEqual([]);
    expect(feed(o, ['q', 'p', 'q'])).toEqual(['q', 'p', 'q']);
  });

  it('keeps only the last `keep` lines for matching', () => {
    const o = new LogOverlap(2);
    feed(o, ['a', 'b', 'c']);
    o.reconnected();
    expect(feed(o, ['a', 'b', 'c', 'd'])).toEqual(['a', 'b', 'c', 'd']);
  });
});
