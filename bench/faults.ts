import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { median } from './bench-util.js';
import { readResults, type Convergence } from '../test/faults/harness/report.js';

// The fault suite's figures: runs the suite (vitest project "faults") REMOTEGPU_FAULT_RUNS times
// (default 3) and writes the median time to converge per scenario to bench/faults.json.
//   npx tsx bench/faults.ts                      # scenarios safe on any machine
//   REMOTEGPU_FAULTS_HOST=1 npx tsx bench/faults.ts   # also dockerd restart and the iptables partition (root; CI machines)
//   npx tsx bench/faults.ts test/faults/cycles.test.ts # arguments go to vitest (here: one scenario)
// A run whose tests fail still counts the scenarios that converged; the failures are listed.

const runs = Number(process.env.REMOTEGPU_FAULT_RUNS ?? 3);
const outDir = path.resolve('bench/out');
mkdirSync(outDir, { recursive: true });
const all: Convergence[] = [];
const failedRuns: number[] = [];

for (let run = 1; run <= runs; run++) {
  const file = path.join(outDir, `faults-run-${run}.json`);
  console.log(`\n== fault suite, run ${run} of ${runs} (results: ${file})`);
  const res = spawnSync('npx', ['vitest', 'run', '--project', 'faults', ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, REMOTEGPU_FAULTS_RESULTS: file },
  });
  if (res.status !== 0) failedRuns.push(run);
  all.push(...readResults(file));
}

const byScenario = new Map<string, number[]>();
for (const r of all) byScenario.set(r.scenario, [...(byScenario.get(r.scenario) ?? []), r.seconds]);
const scenarios = [...byScenario].map(([scenario, seconds]) => ({ scenario, medianSeconds: median(seconds), seconds }));
writeFileSync(
  path.resolve('bench/faults.json'),
  `${JSON.stringify({ measuredAt: new Date().toISOString(), runs, failedRuns, hostDisruptive: process.env.CI === 'true' || process.env.REMOTEGPU_FAULTS_HOST === '1', scenarios }, null, 2)}\n`,
);
const width = Math.max(8, ...scenarios.map((s) => s.scenario.length));
console.log(`\nfault suite: median time to converge of ${runs} runs (bench/faults.json)`);
console.log(`${'scenario'.padEnd(width)}  median (s)  runs (s)`);
for (const s of scenarios) console.log(`${s.scenario.padEnd(width)}  ${s.medianSeconds.toFixed(1).padStart(10)}  ${s.seconds.map((x) => x.toFixed(1)).join(', ')}`);
if (failedRuns.length > 0) console.log(`runs with failing scenarios: ${failedRuns.join(', ')} (see their output above)`);
