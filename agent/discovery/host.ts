import { readFileSync } from 'node:fs';
import { readFile, realpath, statfs } from 'node:fs/promises';
import { cpus, hostname, machine, networkInterfaces, platform, release, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { HostInfo } from './types.js';

/** Interfaces whose addresses are local plumbing, not a way to reach the host. */
const PLUMBING_INTERFACE = /^(docker\d*|veth|br-|virbr|cni|flannel|cali|vxlan|lo$)/;

export interface InterfaceAddresses {
  readonly iface: string;
  readonly ip4: string;
  readonly ip6: string;
  readonly internal: boolean;
}

/** Where the distribution names itself (os-release(5)): the first one that exists counts. */
const OS_RELEASE_FILES = ['/etc/os-release', '/usr/lib/os-release'];

/**
 * Describes the host: name, reachable addresses, OS, kernel, CPU, memory, and the size and free
 * space of the filesystem holding `dataDir` (which need not exist yet: its nearest existing
 * ancestor is used). It runs in the agent's process every discovery interval, so it never blocks
 * the event loop: node:os (system calls that return at once) and asynchronous file reads only, no
 * synchronous child process (systeminformation, used before, ran `hostname -f`, `cat /proc/…` and
 * several commands per network interface with execSync: 0.2–2 s of stalled event loop per scan).
 * Rejects only if the disk cannot be measured at all.
 */
export async function discoverHost(dataDir: string): Promise<HostInfo> {
  const dir = await existingAncestor(resolve(dataDir));
  const [disk, os] = await Promise.all([statfsUsage(dir), osName()]);
  const cpuList = cpus();
  return {
    hostname: hostname(),
    addresses: pickAddresses(interfaceAddresses()),
    os,
    kernel: release(),
    cpuModel: cpuList[0]?.model.trim() || `${machine()} CPU`,
    cpuCores: cpuList.length,
    memoryBytes: totalmem(),
    diskTotalBytes: disk.total,
    diskFreeBytes: disk.free,
  };
}

/** Each interface's first IPv4 and first IPv6 address that is not link-local (os.networkInterfaces). */
function interfaceAddresses(): InterfaceAddresses[] {
  return Object.entries(networkInterfaces()).map(([iface, list = []]) => ({
    iface,
    ip4: list.find((a) => a.family === 'IPv4')?.address ?? '',
    ip6: list.find((a) => a.family === 'IPv6' && !/^fe80:/i.test(a.address))?.address ?? '',
    internal: list.some((a) => a.internal),
  }));
}

/** "Ubuntu 22.04.4 LTS" from os-release's PRETTY_NAME (else NAME VERSION_ID); the platform when there is none. */
async function osName(): Promise<string> {
  for (const file of OS_RELEASE_FILES) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const fields = parseOsRelease(text);
    const name = fields.PRETTY_NAME || [fields.NAME, fields.VERSION_ID].filter(Boolean).join(' ');
    if (name) return name;
  }
  return platform();
}

/** KEY=value lines of an os-release file, quotes removed. Pure. */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) fields[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, '$2');
  }
  return fields;
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
async function existingAncestor(path: string): Promise<string> {
  for (let p = path; ; p = dirname(p)) {
    try {
      return await realpath(p);
    } catch {
      if (dirname(p) === p) return p;
    }
  }
}
