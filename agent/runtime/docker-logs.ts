import type { Container } from 'dockerode';
import { toRuntimeError } from './docker-errors.js';
import { parseDockerTime } from './docker-status.js';
import type { LogLine, LogOptions } from './types.js';

type StreamName = LogLine['stream'];

/**
 * The longest piece of a line the decoder holds (bytes after the timestamp). A longer line comes
 * out in pieces, each but the last `continued`. 16 KiB is also the size at which Docker's
 * json-file and local drivers cut a line into partial messages, each with its own timestamp, so
 * the pieces fall where Docker cut and every piece carries its own timestamp.
 */
export const MAX_LINE_BYTES = 16 * 1024;

/** Enough bytes to recognise Docker's timestamp ("2024-05-01T10:00:00.123456789Z "). */
const TIMESTAMP_PROBE = 40;

const EMPTY = Buffer.alloc(0);

/** A piece's leading Docker timestamp: its length with the space (0: none) and its time (0: none). */
interface Prefix {
  readonly length: number;
  readonly atMs: number;
}

/** The line being read on one stream: its bytes so far (never concatenated until it is emitted). */
class PendingLine {
  parts: Buffer[] = [];
  size = 0;
  /** The piece's timestamp, read once from its first bytes; unknown until TIMESTAMP_PROBE bytes came. */
  prefix: Prefix | undefined;
  /** Raw bytes this piece may hold: timestamp prefix + MAX_LINE_BYTES; unknown until the prefix is seen. */
  limit: number | undefined;
  /** Bytes of a UTF-8 character cut at the previous piece's end, to start the next piece's text. */
  carry: Buffer = EMPTY;
  /** Timestamp of the previous piece, for a continuation that has none of its own. */
  lastAtMs = 0;

  add(data: Buffer): void {
    this.parts.push(data);
    this.size += data.length;
  }

  take(): Buffer {
    const raw = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    this.limit = undefined;
    this.prefix = undefined;
    return raw;
  }

  /** Records the piece's timestamp (read from its first bytes) and so how much it may hold. */
  known(prefix: Prefix): void {
    this.prefix = prefix;
    this.limit = prefix.length + MAX_LINE_BYTES;
  }
}

/**
 * Turns the bytes of Docker's logs endpoint (requested with timestamps) into lines. Without a TTY
 * Docker multiplexes stdout and stderr in frames (8-byte header: stream type, 3 zero bytes, size);
 * with a TTY the bytes are raw stdout. Lines and UTF-8 characters split across chunks come out
 * whole; a line longer than MAX_LINE_BYTES comes out in pieces (`continued` on all but the last),
 * so the decoder holds at most one piece per stream and does work linear in the bytes it is fed.
 * No I/O.
 */
export class LogDecoder {
  /** Bytes of a frame header split across chunks (at most 8). */
  private header: Buffer = EMPTY;
  /** Payload bytes still to come in the current frame, and its stream. */
  private remaining = 0;
  private frameStream: StreamName = 'stdout';
  private readonly pending: Record<StreamName, PendingLine> = { stdout: new PendingLine(), stderr: new PendingLine() };

  constructor(private readonly tty: boolean) {}

  /** Bytes held for lines not yet complete (at most about one piece per stream). */
  get bufferedBytes(): number {
    return this.header.length + this.pending.stdout.size + this.pending.stderr.size;
  }

  /** Feeds a chunk; returns the lines (and pieces of long lines) it completed. */
  push(chunk: Buffer): LogLine[] {
    const lines: LogLine[] = [];
    if (this.tty) {
      this.append('stdout', chunk, lines);
      return lines;
    }
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const end = Math.min(chunk.length, pos + this.remaining);
        this.append(this.frameStream, chunk.subarray(pos, end), lines);
        this.remaining -= end - pos;
        pos = end;
        continue;
      }
      const need = 8 - this.header.length;
      const part = chunk.subarray(pos, pos + need);
      this.header = this.header.length ? Buffer.concat([this.header, part]) : part;
      pos += part.length;
      if (this.header.length < 8) break;
      this.frameStream = this.header[0] === 2 ? 'stderr' : 'stdout';
      this.remaining = this.header.readUInt32BE(4);
      this.header = EMPTY;
    }
    return lines;
  }

  /** Returns what is left without a trailing newline, as lines. */
  flush(): LogLine[] {
    const lines: LogLine[] = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      const p = this.pending[stream];
      if (p.size > 0 || p.carry.length > 0) lines.push(this.emit(stream, false));
    }
    return lines;
  }

  private append(stream: StreamName, data: Buffer, out: LogLine[]): void {
    const p = this.pending[stream];
    let pos = 0;
    while (pos < data.length) {
      const nl = data.indexOf(0x0a, pos);
      const end = nl === -1 ? data.length : nl;
      while (pos < end) {
        // A line's start with enough bytes at hand: its timestamp is read there, without a copy.
        if (p.size === 0 && p.limit === undefined && end - pos >= TIMESTAMP_PROBE) p.known(timestampPrefix(data.subarray(pos, pos + TIMESTAMP_PROBE)));
        // Until the timestamp prefix is known, take only enough bytes to recognise it.
        const room = p.limit === undefined ? TIMESTAMP_PROBE - p.size : p.limit - p.size;
        const take = Math.min(room, end - pos);
        p.add(data.subarray(pos, pos + take));
        pos += take;
        if (p.limit === undefined && p.size >= TIMESTAMP_PROBE) p.known(timestampPrefix(Buffer.concat(p.parts, p.size)));
        if (p.limit !== undefined && p.size >= p.limit) out.push(this.emit(stream, true));
      }
      if (nl === -1) break;
      out.push(this.emit(stream, false));
      pos = nl + 1;
    }
  }

  /** The pending piece as a line; a piece cut in the middle of a UTF-8 character leaves its start for the next. */
  private emit(stream: StreamName, continued: boolean): LogLine {
    const p = this.pending[stream];
    // A piece shorter than the probe has not had its timestamp read yet.
    const prefix = p.prefix;
    const raw = p.take();
    const { length, atMs } = prefix ?? timestampPrefix(raw);
    let body = raw.subarray(length);
    if (p.carry.length > 0) body = Buffer.concat([p.carry, body]);
    p.carry = EMPTY;
    if (continued) {
      const cut = incompleteUtf8Tail(body);
      if (cut > 0) {
        p.carry = Buffer.from(body.subarray(body.length - cut));
        body = body.subarray(0, body.length - cut);
      }
    }
    const text = body.toString('utf8').replace(/\r$/, '');
    // A continuation without a timestamp of its own (not cut by Docker) keeps its line's.
    const at = atMs > 0 ? atMs : p.lastAtMs;
    p.lastAtMs = continued ? at : 0;
    const line: LogLine = { atMs: at, stream, text };
    return continued ? { ...line, continued: true } : line;
  }
}

/** A leading Docker timestamp and its space ("2024-…Z "); length 0 when the bytes start otherwise. */
function timestampPrefix(raw: Buffer): Prefix {
  const space = raw.subarray(0, TIMESTAMP_PROBE).indexOf(0x20);
  if (space < 20) return NO_PREFIX;
  const token = raw.subarray(0, space).toString('latin1');
  const atMs = /^\d{4}-\d\d-\d\dT/.test(token) ? parseDockerTime(token) : 0;
  return atMs > 0 ? { length: space + 1, atMs } : NO_PREFIX;
}

const NO_PREFIX: Prefix = { length: 0, atMs: 0 };

/** How many bytes at the end of `buf` are the start of a UTF-8 character whose rest is missing (0–3). */
function incompleteUtf8Tail(buf: Buffer): number {
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const byte = buf[buf.length - back]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/**
 * The container's log lines (see ContainerRuntime.logs). The Docker response stream is destroyed
 * when `signal` aborts and whenever the iterator ends, so no socket outlives it.
 */
export async function* containerLogs(container: Container, tty: boolean, options: LogOptions): AsyncGenerator<LogLine> {
  const { signal } = options;
  if (signal.aborted) return;
  const decoder = new LogDecoder(tty);
  // Docker sends every line when tail is absent.
  const base = { stdout: true, stderr: true, timestamps: true, ...(options.tail !== undefined ? { tail: options.tail } : {}) };
  if (!options.follow) {
    let body: Buffer;
    try {
      body = await container.logs({ ...base, follow: false, abortSignal: signal });
    } catch (err) {
      if (signal.aborted) return;
      throw toRuntimeError(err, 'reading logs');
    }
    yield* decoder.push(Buffer.isBuffer(body) ? body : Buffer.from(String(body)));
    yield* decoder.flush();
    return;
  }

  let stream: NodeJS.ReadableStream & { destroy(): void };
  try {
    stream = (await container.logs({ ...base, follow: true, abortSignal: signal })) as typeof stream;
  } catch (err) {
    if (signal.aborted) return;
    throw toRuntimeError(err, 'following logs');
  }
  const onAbort = () => stream.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) {
      for (const line of decoder.push(chunk as Buffer)) {
        if (signal.aborted) return;
        yield line;
      }
    }
    yield* decoder.flush();
  } catch (err) {
    if (signal.aborted) return;
    throw toRuntimeError(err, 'following logs');
  } finally {
    signal.removeEventListener('abort', onAbort);
    stream.destroy();
  }
}
