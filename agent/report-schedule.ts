// When the agent reports (pure). Thousands of agents started together, or reconnecting together
// after a controller restart, would otherwise report in lockstep: every pause is spread by
// ±`jitter` of itself, and the first report waits a random part of `jitter` of the interval.

/** Default of REMOTEGPU_REPORT_JITTER_PERCENT, as a fraction. */
export const DEFAULT_REPORT_JITTER = 0.15;

/** The most jitter allowed (a fraction of the interval). */
export const MAX_REPORT_JITTER = 0.5;

const fraction = (jitter: number) => Math.min(Math.max(jitter, 0), MAX_REPORT_JITTER);

/**
 * The pause before the next regular report: `intervalMs` spread uniformly over ±`jitter` of it
 * (0.15: 8.5-11.5 s for 10 s), never below 1 ms. `random` is Math.random unless a test gives one.
 */
export function jitteredIntervalMs(intervalMs: number, jitter: number, random: () => number = Math.random): number {
  const j = fraction(jitter);
  return Math.max(1, Math.round(intervalMs * (1 - j + 2 * j * random())));
}

/** The pause before the first report (or registration) after the agent starts: uniform in [0, `jitter` × interval]. */
export function firstReportDelayMs(intervalMs: number, jitter: number, random: () => number = Math.random): number {
  return Math.round(intervalMs * fraction(jitter) * random());
}
