import { describe, expect, it } from 'vitest';
import { FollowQueue } from '../../../controller/environments/follow-queue.js';
import type { LogEntry } from '../../../controller/environments/log-entry.js';

// The per-follow buffer (issue 11, item 6): bounded, container output waits for room, platform
// events past their allowance are dropped and replaced by one "(N lines skipped …)" line.

const at = new Date(0);
const line = (text: string): LogEntry => ({ at, text });

async function take(q: FollowQueue, n: number): Promise<string[]> {
  const out: string[] = [];
  for await (const e of q.drain()) {
    out.push(e.text);
    if (out.length === n) break;
  }
  return out;
}

describe('FollowQueue', () => {
  it('makes container output wait while the buffer is full, and lets it on as the reader takes lines', async () => {
    const q = new FollowQueue(new AbortController().signal, { lines: 3, chars: 1000 });
    let pushed = 0;
    const writer = (async () => {
      for (let i = 0; i < 10; i++) if (await q.push(line(`l${i}`))) pushed++;
    })();
    await new Promise((r) => setTimeout(r, 20));
    expect(pushed).toBe(3);
    expect(q.stats.lines).toBe(3);
    const reader = q.drain();
    const got: string[] = [];
    for (let i = 0; i < 10; i++) {
      got.push((await reader.next()).value!.text);
      expect(q.stats.lines).toBeLessThanOrEqual(3);
    }
    await writer;
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `l${i}`));
    q.close();
  });

  it('counts characters too', async () => {
    const q = new FollowQueue(new AbortController().signal, { lines: 1000, chars: 10 });
    expect(await q.push(line('x'.repeat(10)))).toBe(true);
    let second = false;
    void q.push(line('y')).then(() => (second = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(second).toBe(false);
    q.close();
  });

  it('drops events over the allowance, leaving one marker with their count where they were', async () => {
    const q = new FollowQueue(new AbortController().signal, { lines: 2, chars: 1000 });
    await q.push(line('a'));
    await q.push(line('b'));
    for (let i = 0; i < 150; i++) q.offer(line(`e${i}`)); // 100 fit over the limit, 50 are dropped
    expect(q.stats).toMatchObject({ lines: 103, skipped: 50 });
    const out = await take(q, 103);
    expect(out.slice(0, 102)).toEqual(['a', 'b', ...Array.from({ length: 100 }, (_, i) => `e${i}`)]);
    expect(out[102]).toBe('(50 lines skipped: the client reads slower than the environment writes)');
    q.offer(line('after'));
    expect(await take(q, 1)).toEqual(['after']);
    q.close();
  });

  it('ends when the client leaves; a waiting writer returns false; close with discard drops what is held', async () => {
    const client = new AbortController();
    const q = new FollowQueue(client.signal, { lines: 1, chars: 1000 });
    await q.push(line('held'));
    const waiting = q.push(line('never'));
    client.abort();
    expect(await waiting).toBe(false);
    expect(await take(q, 10)).toEqual(['held']);

    const q2 = new FollowQueue(new AbortController().signal);
    await q2.push(line('secret'));
    q2.close({ discard: true });
    expect(await take(q2, 10)).toEqual([]);
  });
});
