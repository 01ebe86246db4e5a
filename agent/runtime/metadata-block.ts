import { execFile } from 'node:child_process';
import type { Logger } from '../../common/logger.js';
import { formatCidr, parseCidr } from './env-network.js';
import { KeyedLock } from './keyed-lock.js';

// Environments must not reach the cloud's instance metadata service (169.254.169.254): it hands
// out the host's credentials. Traffic from the network pool to that address is dropped twice:
// in DOCKER-USER (routed out of the host: FORWARD, where Docker evaluates that chain first) and in
// INPUT (the host may answer on that address itself, e.g. a local metadata proxy).

export const METADATA_ADDRESS = '169.254.169.254/32';

/** Marks the agent's rules, so that they are recognisable in `iptables -S`. */
export const METADATA_RULE_COMMENT = 'remotegpu-block-metadata';

/**
 * The iptables front ends tried, in order. Docker runs `iptables` from its PATH, which is either
 * iptables-nft or iptables-legacy depending on the host's alternatives; the one whose tables hold
 * Docker's DOCKER-USER chain is the one Docker uses.
 */
export const IPTABLES_CANDIDATES: readonly string[] = ['iptables', 'iptables-nft', 'iptables-legacy'];

export interface MetadataBlockOptions {
  /** iptables binaries to try (tests); default IPTABLES_CANDIDATES. */
  readonly binaries?: readonly string[];
}

/** Which binary and forward chain the rules go to. */
export interface IptablesTarget {
  readonly binary: string;
  /** DOCKER-USER when Docker manages iptables; FORWARD when no DOCKER-USER chain exists anywhere. */
  readonly forwardChain: 'DOCKER-USER' | 'FORWARD';
}

/** iptables calls (check, insert, delete) run one at a time in the process. */
const iptablesLock = new KeyedLock();

/**
 * Installs (idempotently: `iptables -C` before `-I`) the rules dropping traffic from `pool` to
 * 169.254.169.254 in DOCKER-USER and INPUT; returns whether both are in effect. Without iptables,
 * or when it fails (not root), logs one warning and returns false. Rules flushed by someone else
 * (a firewall reload) come back on the next call.
 */
export async function blockMetadata(pool: string, log?: Logger, options: MetadataBlockOptions = {}): Promise<boolean> {
  const source = formatCidr(parseCidr(pool));
  return iptablesLock.run('iptables', async () => {
    try {
      const target = await findIptables(options.binaries ?? IPTABLES_CANDIDATES);
      if (!target) {
        log?.warn({ tried: options.binaries ?? IPTABLES_CANDIDATES }, 'iptables not found: environments can reach the cloud metadata address 169.254.169.254');
        return false;
      }
      if (target.forwardChain === 'FORWARD') {
        log?.warn({ binary: target.binary }, "no DOCKER-USER chain (Docker not managing iptables?): the metadata block goes into FORWARD");
      }
      let added = 0;
      for (const chain of [target.forwardChain, 'INPUT']) {
        const rule = metadataRule(chain, source);
        if (await iptables(target.binary, ['-C', ...rule]).then(ok, notOk)) continue;
        await iptables(target.binary, ['-I', ...rule]);
        added++;
      }
      if (added > 0) log?.info({ binary: target.binary, pool: source, added }, 'metadata address blocked for environments');
      return true;
    } catch (err) {
      log?.warn({ err: String(err) }, 'could not block the cloud metadata address 169.254.169.254 for environments');
      return false;
    }
  });
}

/** Deletes every copy of the rules blockMetadata installs for `pool` (tests, reset); returns how many. */
export async function unblockMetadata(pool: string, options: MetadataBlockOptions = {}): Promise<number> {
  const source = formatCidr(parseCidr(pool));
  return iptablesLock.run('iptables', async () => {
    let removed = 0;
    for (const binary of options.binaries ?? IPTABLES_CANDIDATES) {
      try {
        for (const chain of ['DOCKER-USER', 'FORWARD', 'INPUT']) {
          const rule = metadataRule(chain, source);
          // Bounded: a rule that -C sees but -D cannot delete must not loop forever.
          for (let i = 0; i < 100 && (await iptables(binary, ['-C', ...rule]).then(ok, notOk)); i++) {
            await iptables(binary, ['-D', ...rule]);
            removed++;
          }
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return removed;
  });
}

/**
 * The iptables front end Docker uses: the first of `binaries` whose tables hold DOCKER-USER; else
 * the first that runs at all (with FORWARD); undefined when none is installed.
 */
export async function findIptables(binaries: readonly string[] = IPTABLES_CANDIDATES): Promise<IptablesTarget | undefined> {
  let firstPresent: string | undefined;
  for (const binary of binaries) {
    try {
      await iptables(binary, ['-S', 'DOCKER-USER']);
      return { binary, forwardChain: 'DOCKER-USER' };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      firstPresent ??= binary;
    }
  }
  return firstPresent ? { binary: firstPresent, forwardChain: 'FORWARD' } : undefined;
}

/** The rule's specification (after -C/-I/-D) in `chain`. */
export function metadataRule(chain: string, source: string): string[] {
  return [chain, '-s', source, '-d', METADATA_ADDRESS, '-m', 'comment', '--comment', METADATA_RULE_COMMENT, '-j', 'DROP'];
}

const ok = () => true;
const notOk = (err: unknown) => {
  // A missing binary is not "rule absent": let the caller see it.
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err;
  return false;
};

/** Runs `binary -w 5 ...args` (waiting up to 5 s for the xtables lock); rejects on a non-zero exit. */
function iptables(binary: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, ['-w', '5', ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) {
        const message = String(stderr).trim() || err.message;
        reject(Object.assign(new Error(`${binary} ${args.join(' ')}: ${message}`), { code: (err as NodeJS.ErrnoException).code }));
      } else {
        resolve(String(stdout));
      }
    });
  });
}

/**
 * blockMetadata now (`ready` settles once the rules are in), then again every `intervalMs`: a
 * firewall reload (firewalld, ufw, `iptables -F`) flushes them. `stop()` ends the loop.
 */
export function keepMetadataBlocked(pool: string, log?: Logger, intervalMs = 60_000): { ready: Promise<boolean>; stop(): void } {
  const ready = blockMetadata(pool, log);
  const timer = setInterval(() => void blockMetadata(pool, log), intervalMs);
  timer.unref();
  return { ready, stop: () => clearInterval(timer) };
}
