import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** What the agent keeps between runs: its host id and credential (mode 0600). */
export interface AgentIdentity {
  readonly hostId: string;
  readonly credential: string;
  readonly controller: string;
}

const FILE = 'agent-identity.json';

/** The saved identity, or undefined on first start (or when the file is unreadable). */
export async function loadIdentity(dataDir: string): Promise<AgentIdentity | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path.join(dataDir, FILE), 'utf8')) as Partial<AgentIdentity>;
    if (typeof parsed.hostId === 'string' && typeof parsed.credential === 'string') {
      return { hostId: parsed.hostId, credential: parsed.credential, controller: String(parsed.controller ?? '') };
    }
  } catch {
    // first start
  }
  return undefined;
}

/** Saves the identity atomically (write + rename), readable by root only. */
export async function saveIdentity(dataDir: string, identity: AgentIdentity): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const target = path.join(dataDir, FILE);
  const tmp = `${target}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(identity), { mode: 0o600 });
  await rename(tmp, target);
}
