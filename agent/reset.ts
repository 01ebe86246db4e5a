import path from 'node:path';
import { deleteIdentity, identityPath, readIdentity } from './identity.js';

// `remotegpu-agent reset`: forgets this host's identity so that the next start registers anew.
// The only way (besides deleting the file) the agent ever gives up its identity. Containers are
// not touched.

/** Deletes the identity file in `dataDir` after printing what it held. Returns the exit code. */
export async function resetIdentity(dataDir: string, print: (line: string) => void): Promise<number> {
  const dir = path.resolve(dataDir);
  const file = identityPath(dir);
  const stored = await readIdentity(dir);
  if (stored.kind === 'none') {
    print(`no identity file at ${file}: this agent is not registered; nothing to reset`);
    return 0;
  }
  let hostId: string | undefined;
  if (stored.kind === 'unreadable') {
    print(`removing ${file} (unreadable: ${stored.reason})`);
  } else {
    const held = stored.kind === 'current' ? stored.identity : stored;
    hostId = held.hostId;
    print(`removing ${file}: host ${held.hostId}, registered with controller ${held.controller || '(unknown)'}`);
  }
  try {
    await deleteIdentity(dir);
  } catch (err) {
    print(`cannot remove ${file}: ${(err as Error).message}`);
    return 1;
  }
  print('removed. The containers of this host were not touched. Stop the agent first if it is running (systemctl stop remotegpu-agent): a running agent still holds the old identity.');
  const where = hostId ? `host ${hostId} on the controller (DELETE /api/v1/admin/hosts/${hostId})` : 'the old host on the controller (DELETE /api/v1/admin/hosts/<host id>)';
  print(`Next: delete ${where}, then start the agent with a new join token (REMOTEGPU_JOIN_TOKEN=<secret>@sha256:<hash>) to register anew.`);
  return 0;
}
