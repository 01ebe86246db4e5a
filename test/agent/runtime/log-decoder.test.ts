import { describe, expect, it } from 'vitest';
import { LogDecoder, MAX_LINE_BYTES } from '../../../agent/runtime/docker-logs.js';
import type { LogLine } from '../../../agent/runtime/types.js';

// Long lines without a newline (issue 11, item 5): the decoder cuts them into 16 KiB pieces marked
// `continued`, holds at most one piece per stream, and never concatenates what it already holds.

const TS = '2025-01-02T03:04:05.123456789Z ';
const AT = Date.UTC(2025, 0, 2, 3, 4, 5, 123);

function frame(stream: 1 | 2, body: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** Feeds `bytes` in chunks of `size`, recording the most the decoder held between chunks. */
function feed(d: LogDecoder, bytes: Buffer, size: number): { lines: LogLine[]; maxHeld: number; linesBeforeEnd: number } {
  const lines: LogLine[] = [];
  let maxHeld = 0;
  for (let i = 0; i < bytes.length; i += size) {
    lines.push(...d.push(bytes.subarray(i, i + size)));
    maxHeld = Math.max(maxHeld, d.bufferedBytes);
  }
  const linesBeforeEnd = lines.length;
  lines.push(...d.flush());
  return { lines, maxHeld, linesBeforeEnd };
}

describe('LogDecoder with lines longer than MAX_LINE_BYTES', () => {
  it('cuts a 16 MiB line written without a newline, framed as Docker cuts it, into timestamped 16 KiB pieces as it comes', () => {
    // Docker's json-file driver stores such a line as partial messages of 16384 bytes, each sent
    // in its own frame with its own timestamp.
    const total = 16 * 2 ** 20;
    const piece = Buffer.concat([Buffer.from(TS), Buffer.alloc(MAX_LINE_BYTES, 'a')]);
    const frames = Buffer.concat(Array.from({ length: total / MAX_LINE_BYTES }, () => frame(1, piece)));
    const { lines, maxHeld, linesBeforeEnd } = feed(new LogDecoder(false), frames, 64 * 1024);
    console.log(`16 MiB without newline: ${lines.length} pieces, at most ${maxHeld} bytes held`);
    expect(lines).toHaveLength(total / MAX_LINE_BYTES);
    expect(linesBeforeEnd).toBe(lines.length); // every piece came out while the line was still being written
    expect(maxHeld).toBeLessThanOrEqual(MAX_LINE_BYTES + 64);
    for (const l of lines) {
      expect(l.text.length).toBe(MAX_LINE_BYTES);
      expect(l.atMs).toBe(AT);
      expect(l.text).not.toContain('2025-'); // each piece's own timestamp was recognised, not left in the text
    }
    expect(lines.slice(0, -1).every((l) => l.continued === true)).toBe(true);
  });

  it('cuts a raw TTY line with one timestamp at 16 KiB; pieces keep the line’s timestamp; the newline ends the last piece', () => {
    const body = Buffer.alloc(40_000, 'b');
    const { lines } = feed(new LogDecoder(true), Buffer.concat([Buffer.from(TS), body, Buffer.from('\n' + TS + 'next\n')]), 1000);
    expect(lines.map((l) => [l.text.length, l.continued === true, l.atMs])).toEqual([
      [MAX_LINE_BYTES, true, AT],
      [MAX_LINE_BYTES, true, AT],
      [40_000 - 2 * MAX_LINE_BYTES, false, AT],
      [4, false, AT],
    ]);
    expect(lines[3]!.text).toBe('next');
  });

  it('holds at most one piece of a huge frame fed in small chunks', () => {
    // A frame header may announce any size: its payload is read as it comes, never gathered whole.
    const payload = Buffer.alloc(2 ** 20, 'c');
    const { lines, maxHeld } = feed(new LogDecoder(false), frame(2, payload), 1000);
    expect(maxHeld).toBeLessThanOrEqual(MAX_LINE_BYTES + 64);
    expect(lines.map((l) => l.text).join('')).toBe(payload.toString());
    expect(lines.every((l) => l.stream === 'stderr')).toBe(true);
    expect(lines).toHaveLength(Math.ceil(payload.length / MAX_LINE_BYTES));
  });

  it('never cuts a UTF-8 character in two', () => {
    // One ASCII byte first, so that a 2-byte character straddles every 16 KiB boundary.
    const text = 'x' + 'é'.repeat(30_000);
    const { lines } = feed(new LogDecoder(true), Buffer.from(`${TS}${text}\n`), 4096);
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.some((l) => l.text.includes('\uFFFD'))).toBe(false);
    expect(lines.map((l) => l.text).join('')).toBe(text);
  });

  it('many short lines in one chunk come out one by one', () => {
    const chunk = Buffer.from(Array.from({ length: 5000 }, () => `${TS}y\n`).join(''));
    const lines = new LogDecoder(true).push(chunk);
    expect(lines).toHaveLength(5000);
    expect(lines.every((l) => l.text === 'y' && !l.continued && l.atMs === AT)).toBe(true);
  });
});
