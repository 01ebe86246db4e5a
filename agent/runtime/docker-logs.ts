import type { Container } from 'dockerode';
import { toRuntimeError } from './docker-errors.js';
import { parseDockerTime } from './docker-status.js';
import type { LogLine, LogOptions } from './types.js';

type StreamName = LogLine['stream'];

/**
 * Turns the bytes of Docker's logs endpoint (requested with timestamps) into lines. Without a TTY
 * Docker multiplexes stdout and stderr in frames (8-byte header: stream type, 3 zero bytes, size);
 * with a TTY the bytes are raw stdout. Bytes are kept until a newline, so lines and UTF-8
 * characters split across chunks come out whole. No I/O.
 */
export class LogDecoder {
  private frame: Buffer = Buffer.alloc(0);
  private readonly partial: Record<StreamName, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };

  constructor(private readonly tty: boolean) {}

  /** Feeds a chunk; returns the lines it completed. */
  push(chunk: Buffer): LogLine[] {
    if (this.tty) return this.append('stdout', chunk);
    this.frame = this.frame.length ? Buffer.concat([this.frame, chunk]) : chunk;
    const lines: LogLine[] = [];
    while (this.frame.length >= 8) {
      const size = this.frame.readUInt32BE(4);
      if (this.frame.length < 8 + size) break;
      const stream: StreamName = this.frame[0] === 2 ? 'stderr' : 'stdout';
      lines.push(...this.append(stream, this.frame.subarray(8, 8 + size)));
      this.frame = this.frame.subarray(8 + size);
    }
    return lines;
  }

  /** Returns what is left without a trailing newline, as lines. */
  flush(): LogLine[] {
    const lines: LogLine[] = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream].length) lines.push(parseLine(stream, this.partial[stream]));
      this.partial[stream] = Buffer.alloc(0);
    }
    return lines;
  }

  private append(stream: StreamName, data: Buffer): LogLine[] {
    let buf = this.partial[stream].length ? Buffer.concat([this.partial[stream], data]) : data;
    const lines: LogLine[] = [];
    for (let nl = buf.indexOf(0x0a); nl !== -1; nl = buf.indexOf(0x0a)) {
      lines.push(parseLine(stream, buf.subarray(0, nl)));
      buf = buf.subarray(nl + 1);
    }
    this.partial[stream] = Buffer.from(buf);
    return lines;
  }
}

/** "2024-05-01T10:00:00.123456789Z text" → LogLine; a line without a timestamp gets atMs 0. */
function parseLine(stream: StreamName, raw: Buffer): LogLine {
  const text = raw.toString('utf8').replace(/\r$/, '');
  const space = text.indexOf(' ');
  const atMs = space > 0 ? parseDockerTime(text.slice(0, space)) : 0;
  return atMs > 0 ? { atMs, stream, text: text.slice(space + 1) } : { atMs: 0, stream, text };
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
