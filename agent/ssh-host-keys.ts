import type { Logger } from '../common/logger.js';
import { parseHostKeys, type SshHostKey } from '../common/ssh-host-keys.js';
import type { ContainerRuntime, ObservedStatus } from './runtime/types.js';

/** The host public keys `ssh-keygen -A` writes (the ECDSA file holds one of the three curves). */
export const HOST_KEY_FILES: readonly string[] = ['/etc/ssh/ssh_host_ed25519_key.pub', '/etc/ssh/ssh_host_ecdsa_key.pub', '/etc/ssh/ssh_host_rsa_key.pub'];
/** A public key file is a line of at most a few KiB; anything larger is not one. */
const MAX_FILE_BYTES = 16 * 1024;
/** A container whose sshd answers but whose key files gave no key is read again after this long. */
const RETRY_MS = 60_000;
/** After a failed read (Docker did not answer), the next is not started before this long. */
const FAILED_RETRY_MS = 10_000;

interface Entry {
  readonly containerId: string;
  readonly keys: readonly SshHostKey[];
  /** When a read of this container last gave no key (0: it gave keys). */
  readonly emptyAt: number;
}

/**
 * The SSH host public keys of every environment's container, read once per container id (a
 * recreated container is read afresh) through the runtime (no shell needed in the image), kept in
 * memory and reported with the container's status. Only well-formed keys of known types are kept
 * (common/ssh-host-keys.ts): the files are the user's to write.
 */
export class SshHostKeys {
  private readonly entries = new Map<string, Entry>();
  private readonly reading = new Map<string, Promise<void>>();
  private readonly failedAt = new Map<string, number>();

  constructor(private readonly o: { runtime: Pick<ContainerRuntime, 'readFiles'>; logger: Logger; onRead: (envId: string) => void; now?: () => number }) {}

  /**
   * The keys of the status's container for a report (none when they were read from another
   * container or not yet). When its sshd answers (`sshReady`) and none are known, starts a read
   * in the background (a container whose files gave none again only after RETRY_MS).
   */
  forReport(status: ObservedStatus, sshReady: boolean): readonly SshHostKey[] {
    const entry = this.entries.get(status.envId);
    if (entry && entry.containerId === status.containerId && entry.keys.length > 0) return entry.keys;
    const now = this.now();
    const due = (!entry || entry.containerId !== status.containerId || now - entry.emptyAt >= RETRY_MS) && now - (this.failedAt.get(status.envId) ?? -Infinity) >= FAILED_RETRY_MS;
    if (sshReady && status.containerId !== '' && due) void this.refresh(status.envId);
    return [];
  }

  /**
   * Reads the keys of the environment's current container unless they are known already (sshd has
   * just answered). Never throws (a failure is logged); one read per environment at a time.
   * `onRead` is called when keys were found.
   */
  refresh(envId: string): Promise<void> {
    const running = this.reading.get(envId);
    if (running) return running;
    const read = this.read(envId).finally(() => this.reading.delete(envId));
    this.reading.set(envId, read);
    return read;
  }

  /** The environment's container was removed: its keys are of no use any more. */
  forget(envId: string): void {
    this.entries.delete(envId);
    this.failedAt.delete(envId);
  }

  private async read(envId: string): Promise<void> {
    try {
      const { containerId, files } = await this.o.runtime.readFiles(envId, HOST_KEY_FILES, MAX_FILE_BYTES);
      this.failedAt.delete(envId);
      const known = this.entries.get(envId);
      if (containerId === '' || (known?.containerId === containerId && known.keys.length > 0)) return;
      const keys = parseHostKeys([...files.values()].map((b) => b.toString('utf8')).join('\n'));
      this.entries.set(envId, { containerId, keys, emptyAt: keys.length > 0 ? 0 : this.now() });
      if (keys.length > 0) this.o.onRead(envId);
      else this.o.logger.info({ envId }, `no SSH host key found in ${HOST_KEY_FILES.join(', ')}; access_info will show none for this container`);
    } catch (err) {
      this.failedAt.set(envId, this.now());
      this.o.logger.warn({ err, envId }, 'reading the SSH host keys of a container failed; retrying with a later report');
    }
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }
}
