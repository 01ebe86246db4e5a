import { execFile } from 'node:child_process';
import { open, readFile, rename, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { RuntimeError } from './errors.js';

// The host's mount table and the tools that change it (mount, umount, losetup, mkfs, resize2fs),
// for host-mounts.ts. The agent runs in the host's mount namespace, where Docker runs too.

const run = promisify(execFile);

/** Mount options of every view an environment gets of the host (volume, datasets): no set-uid, no device nodes. */
export const VIEW_OPTIONS: readonly string[] = ['nosuid', 'nodev'];

/** Every mount point of this mount namespace (the host's, where the agent and Docker run). */
export async function mountPoints(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) points.add(unescapeMountPath(field));
  }
  return points;
}

/** The loop device a mount point is mounted from (mountinfo's source field), if any. */
export async function loopDeviceOf(point: string): Promise<string | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] && unescapeMountPath(fields[4]) === point) {
      const source = fields[fields.indexOf('-') + 2];
      if (source?.startsWith('/dev/loop')) return source;
    }
  }
  return undefined;
}

function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export async function mount(args: readonly string[]): Promise<void> {
  await tool('mount', args);
}

/** Unmounts `point`; lazily when it is busy (a process on the host still in it), so the caller can go on. */
export async function unmount(point: string): Promise<void> {
  try {
    await tool('umount', [point]);
  } catch (err) {
    if (!/busy/i.test(String(err))) throw err;
    await tool('umount', ['-l', point]);
  }
}

export async function unmountAndRemove(point: string): Promise<void> {
  if ((await mountPoints()).has(point)) await unmount(point);
  await rmdir(point).catch(() => undefined);
}

/** Runs a host tool; its stderr becomes the RuntimeError's message ('internal'). */
export async function tool(command: string, args: readonly string[]): Promise<void> {
  await toolOutput(command, args);
}

/** Runs a host tool and returns its standard output; failures as in tool(). */
export async function toolOutput(command: string, args: readonly string[]): Promise<string> {
  try {
    return (await run(command, [...args], { timeout: 120_000 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    const why = e.code === 'ENOENT' ? `${command} is not installed` : (e.stderr?.trim() || e.message).split('\n')[0];
    throw new RuntimeError('internal', `${command} ${args.join(' ')}: ${why}`, { cause: err });
  }
}

/** True when a loop device is still attached to `file` (some mount namespace has it mounted). */
export async function loopAttached(file: string): Promise<boolean> {
  return (await toolOutput('losetup', ['-j', file])).trim() !== '';
}

/** A sparse file of `size` bytes formatted ext4 (no reserved blocks: the whole size is the user's). */
export async function createVolumeFile(file: string, size: number): Promise<void> {
  // Made under another name and renamed once formatted: a file at `file` is always a whole volume.
  const partial = `${file}.new`;
  await rm(partial, { force: true });
  const handle = await open(partial, 'wx', 0o600);
  try {
    await handle.truncate(size);
  } finally {
    await handle.close();
  }
  try {
    await tool('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1,nodiscard', partial]);
    await rename(partial, file);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}

/**
 * Used and total bytes of the file system mounted at `path` (df's "Used" and "Size"); undefined
 * when `path` does not exist or is not a mount point (it would measure its parent's file system).
 */
export async function mountedFsUsage(path: string): Promise<{ usedBytes: number; sizeBytes: number } | undefined> {
  try {
    const [here, parent] = await Promise.all([stat(path), stat(dirname(path))]);
    if (here.dev === parent.dev) return undefined;
    const s = await statfs(path);
    return { usedBytes: Math.max(0, (s.blocks - s.bfree) * s.bsize), sizeBytes: s.blocks * s.bsize };
  } catch {
    return undefined;
  }
}
