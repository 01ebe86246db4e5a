import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './process.js';

export { median } from '../../../bench/bench-util.js';

// Times to converge: printed by every scenario (`FAULT <scenario>: converged in 4.2 s`) and appended
// to bench/out/faults-latest.json, which the suite's global teardown prints as a table and
// bench/faults.ts turns into medians. Figures only: no test asserts a speed.

export const LATEST = process.env.REMOTEGPU_FAULTS_RESULTS ?? path.join(ROOT, 'bench/out/faults-latest.json');

export interface Convergence {
  readonly scenario: string;
  /** Seconds from the fault (or its end, see `from`) to the converged state. */
  readonly seconds: number;
  /** What the clock started at, e.g. "controller killed", "database back". */
  readonly from: string;
  readonly at: string;
}

export function readResults(file = LATEST): Convergence[] {
  if (!existsSync(file)) return [];
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Convergence[];
  } catch {
    return [];
  }
}

/** Prints and records one time to converge, measured from `startedAt` (Date.now()). */
export function recordConvergence(scenario: string, startedAt: number, from: string): number {
  return recordSeconds(scenario, (Date.now() - startedAt) / 1000, from);
}

/** Prints and records a time to converge in seconds (rounded to 0.1 s). */
export function recordSeconds(scenario: string, exact: number, from: string): number {
  const seconds = Math.round(exact * 10) / 10;
  console.log(`FAULT ${scenario}: converged in ${seconds.toFixed(1)} s (from ${from})`);
  mkdirSync(path.dirname(LATEST), { recursive: true });
  writeFileSync(LATEST, `${JSON.stringify([...readResults(), { scenario, seconds, from, at: new Date().toISOString() }], null, 1)}\n`);
  return seconds;
}

/** The table printed at the end of the suite: scenario → time to converge (several runs: each). */
export function summaryTable(results: readonly Convergence[]): string {
  if (results.length === 0) return 'fault suite: no scenario recorded a time to converge';
  const byScenario = new Map<string, Convergence[]>();
  for (const r of results) byScenario.set(r.scenario, [...(byScenario.get(r.scenario) ?? []), r]);
  const width = Math.max(...[...byScenario.keys()].map((k) => k.length), 8);
  const lines = [`${'scenario'.padEnd(width)}  converged in (s)  from`];
  for (const [scenario, rs] of byScenario) lines.push(`${scenario.padEnd(width)}  ${rs.map((r) => r.seconds.toFixed(1)).join(', ').padEnd(16)}  ${rs[0]!.from}`);
  return lines.join('\n');
}
