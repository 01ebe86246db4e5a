import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Median of numbers (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Writes figures as JSON under bench/out/ and returns the path. */
export function writeFigures(name: string, figures: unknown): string {
  const dir = path.resolve('bench/out');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, `${JSON.stringify({ measuredAt: new Date().toISOString(), ...(figures as object) }, null, 2)}\n`);
  return file;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
