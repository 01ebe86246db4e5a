import { rmSync } from 'node:fs';
import { hostDisruptiveAllowed, Partition, startDockerd } from './host.js';
import { startSuitePostgres, stopSuitePostgres } from './postgres.js';
import { LATEST, readResults, summaryTable } from './report.js';

// The fault suite's global setup (vitest project "faults"): its own PostgreSQL server, a fresh
// bench/faults-latest.json; at the end, the summary table, and the host put back as it was
// (no partition chain left, dockerd running) even when a scenario failed half-way.

export async function setup(): Promise<void> {
  if (process.env.REMOTEGPU_FAULTS_KEEP_RESULTS !== '1') rmSync(LATEST, { force: true });
  const url = await startSuitePostgres();
  console.log(`fault suite: PostgreSQL server of its own at ${url}`);
}

export async function teardown(): Promise<void> {
  if (hostDisruptiveAllowed()) {
    await Partition.remove().catch((err: Error) => console.error(`fault suite: removing the iptables chain failed: ${err.message}`));
    await startDockerd().catch((err: Error) => console.error(`fault suite: dockerd is not back: ${err.message}`));
  }
  await stopSuitePostgres();
  console.log(`\nfault suite: time to converge per scenario (${LATEST})\n${summaryTable(readResults())}\n`);
}
