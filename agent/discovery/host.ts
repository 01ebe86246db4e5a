import { readFileSync, realpathSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { cpus, hostname, totalmem } from 'node:os';
import { dirname, resolve, sep } from 'node:path';
import si from 'systeminformation';
import type { HostInfo } from './types.js';

/** Interfaces whose addresses are local plumbing, not a way to reach the host. */
const PLUMBING_INTERFACE = /^(docker\d*|veth|br-|virbr|cni|flannel|cali|vxlan|lo$)/;

export interface MountUsage {
  readonly mount: string;
  readonly size: number;
  readonly available: number;
}

export interface InterfaceAddresses {
  readonly iface: string;
  readonly ip4: string;
  readonly ip6: string;
  readonly internal: boolean;
  readonly virtual: boolean;
}

/**
 * Describes the host: name, reachable addresses, OS, kernel, CPU, memory, and the size and free
 * space of the filesystem holding `dataDir` (which need not exist yet: its nearest existing
 * ancestor is used). Uses systeminformation (not si.graphics: GPUs come from nvidia-smi), falling
 * back to fs.statfs and node:os where it reports nothing. Rejects only if the disk cannot be
 * measured at all.
 */
export async function discoverHost(dataDir: string): Promise<HostInfo> {
  const dir = existingAncestor(resolve(dataDir));
  const [cpu, mem, osInfo, nets, mounts] = await Promise.all([
    si.cpu(),
    si.mem(),
    si.osInfo(),
    si.networkInterfaces(),
    si.fsSize(),
  ]);
  const mount = pickMount(mounts, dir);
  const disk = mount && mount.size > 0 ? { total: mount.size, free: mount.available } : await statfsUsage(dir);
  return {
    hostname: hostname(),
    addresses: pickAddresses(nets),
    os: [osInfo.distro, osInfo.release].filter((s) => s && s !== 'unknown').join(' ') || osInfo.platform,
    kernel: osInfo.kernel,
    cpuModel: [cpu.manufacturer, cpu.brand].filter(Boolean).join(' ') || (cpus()[0]?.model ?? ''),
    cpuCores: cpu.cores || cpus().length,
    memoryBytes: mem.total || totalmem(),
    diskTotalBytes: disk.total,
    diskFreeBytes: disk.free,
  };
}

/** Where the OS keeps its machine id (systemd, then D-Bus on systems without systemd). */
const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

/** What a machine id may be (also REMOTEGPU_MACHINE_ID): 1–128 of A-Za-z0-9._- */
export const MACHINE_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * The OS machine id: `configured` (REMOTEGPU_MACHINE_ID) when set, else the first non-empty line
 * of /etc/machine-id or /var/lib/dbus/machine-id; '' when there is none. It survives a reset of the
 * agent's identity, so the controller can tell that a new host is a machine it knew.
 */
export function readMachineId(configured: string | undefined, files: readonly string[] = MACHINE_ID_FILES): string {
  if (configured) return configured;
  for (const file of files) {
    try {
      const id = readFileSync(file, 'utf8').trim();
      if (MACHINE_ID_PATTERN.test(id)) return id;
    } catch {
      // absent or unreadable: try the next one
    }
  }
  return '';
}

/**
 * The mount that holds `path`: the one whose mount point is the longest prefix of it (on path
 * component boundaries). undefined when none matches. Pure.
 */
export function pickMount<T extends MountUsage>(mounts: readonly T[], path: string): T | undefined {
  let best: T | undefined;
  for (const m of mounts) {
    const point = m.mount;
    const holds = point === '/' || path === point || path.startsWith(point.endsWith(sep) ? point : point + sep);
    if (holds && (!best || point.length > best.mount.length)) best = m;
  }
  return best;
}

/**
 * Addresses other hosts could use: no loopback, no IPv6 link-local (fe80::), no Docker/CNI
 * bridges or veths. IPv4 first, each once. Pure.
 */
export function pickAddresses(nets: readonly InterfaceAddresses[]): string[] {
  const usable = nets.filter((n) => !n.internal && !PLUMBING_INTERFACE.test(n.iface));
  const v4 = usable.map((n) => n.ip4).filter((a) => a !== '');
  const v6 = usable.map((n) => n.ip6).filter((a) => a !== '' && !/^fe80:/i.test(a));
  return [...new Set([...v4, ...v6])];
}

async function statfsUsage(dir: string): Promise<{ total: number; free: number }> {
  const s = await statfs(dir);
  return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
}

/** realpath of `path` or of its nearest existing ancestor. */
function existingAncestor(path: string): string {
  for (let p = path; ; p = dirname(p)) {
    try {
      return realpathSync(p);
    } catch {
      if (dirname(p) === p) return p;
    }
  }
}
