import type { Readable } from 'node:stream';
import { toRuntimeError, ignoreMissing } from './docker-errors.js';
import { findContainer, type ManagedEngine } from './docker-inspect.js';

// Small files read out of a container through Docker's archive API (GET /containers/{id}/archive):
// it needs nothing in the image (no shell, no cat), works on stopped containers and never follows a
// symbolic link at the path itself. The container's content is the user's: every read is bounded.

/** Bytes of tar headers (PAX records included) read before the file's own header at most. */
const MAX_HEADER_BYTES = 8 * 1024;

/**
 * The regular files at `paths` in the environment's current container, with the id of the
 * container they were read from ('' and none when it has no container). A path that is missing,
 * is a link, a directory or anything but a regular file, or holds more than `maxBytes`, is left
 * out. Throws RuntimeError when Docker fails otherwise.
 */
export async function readContainerFiles(engine: ManagedEngine, envId: string, paths: readonly string[], maxBytes: number): Promise<{ containerId: string; files: Map<string, Buffer> }> {
  const files = new Map<string, Buffer>();
  try {
    const found = await findContainer(engine, envId);
    if (!found) return { containerId: '', files };
    const container = engine.docker.getContainer(found.Id);
    for (const path of paths) {
      const stream = await ignoreMissing(() => container.getArchive({ path }) as Promise<Readable>);
      if (!stream) continue;
      const content = await firstRegularFile(stream, maxBytes);
      if (content) files.set(path, content);
    }
    return { containerId: found.Id, files };
  } catch (err) {
    throw toRuntimeError(err, 'reading files of a container');
  }
}

/**
 * The content of the first entry of a tar stream when it is a regular file of at most `maxBytes`,
 * else null. PAX and GNU long-name records before it are skipped. Reads no more than the headers
 * (MAX_HEADER_BYTES) and the file need, then destroys the stream.
 */
export async function firstRegularFile(stream: Readable, maxBytes: number): Promise<Buffer | null> {
  const limit = MAX_HEADER_BYTES + 512 + roundUp(maxBytes);
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of stream) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      chunks.push(buf);
      length += buf.length;
      const verdict = entryOf(Buffer.concat(chunks), maxBytes);
      if (verdict !== 'more') return verdict;
      if (length >= limit) return null;
    }
    const verdict = entryOf(Buffer.concat(chunks), maxBytes);
    return verdict === 'more' ? null : verdict;
  } finally {
    stream.destroy();
  }
}

/** The first regular file's content in the archive's leading bytes, null when there is none to read, 'more' when the bytes end too soon. */
export function entryOf(tar: Buffer, maxBytes: number): Buffer | null | 'more' {
  let offset = 0;
  while (offset <= MAX_HEADER_BYTES) {
    if (tar.length < offset + 512) return 'more';
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) return null; // the end of the archive
    if (!checksumOk(header)) return null;
    const size = octal(header.subarray(124, 136));
    if (size === null) return null;
    const type = String.fromCharCode(header[156]!);
    const data = offset + 512;
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      // Metadata of the next entry (long names, extended attributes): skipped, its size bounded.
      if (size > MAX_HEADER_BYTES) return null;
      offset = data + roundUp(size);
      continue;
    }
    if (type !== '0' && type !== '\0') return null; // a link, a directory, a device: not a file to read
    if (size > maxBytes) return null;
    if (tar.length < data + size) return 'more';
    return Buffer.from(tar.subarray(data, data + size));
  }
  return null;
}

const roundUp = (n: number) => Math.ceil(n / 512) * 512;

/** A tar numeric field (octal text, NUL or space ended); null when malformed or base-256 (sizes that large are refused anyway). */
function octal(field: Buffer): number | null {
  if ((field[0]! & 0x80) !== 0) return null;
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]{1,12}$/.test(text)) return null;
  return parseInt(text, 8);
}

/** The header checksum: the byte sum with the checksum field counted as spaces. */
function checksumOk(header: Buffer): boolean {
  const stored = octal(header.subarray(148, 156));
  if (stored === null) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
  return sum === stored;
}
