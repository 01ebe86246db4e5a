import type { ChannelOptions } from '@grpc/grpc-js';

// How the controller and its agents find each other again after an outage. gRPC's own reconnect
// backoff grows to 120 s by default: a peer that was away for a few minutes was then dialled again
// only every two minutes, long after it came back. Every channel between them is bounded instead,
// and callers that retry on their own (the agent's reporter) use the same bounds.

/** Default ceiling of every reconnect delay (REMOTEGPU_RECONNECT_MAX_MS on the agent). */
export const DEFAULT_RECONNECT_MAX_MS = 5_000;
/** The first retry after a failure waits about this long. */
export const DEFAULT_RECONNECT_MIN_MS = 500;

/** grpc-js spreads each reconnect delay by ±20% (its BACKOFF_JITTER). */
const GRPC_JS_JITTER = 0.2;

export interface BackoffBounds {
  readonly minMs: number;
  readonly maxMs: number;
}

/**
 * The wait before retry number `failures` (1 after the first failure): exponential from `minMs`,
 * capped at `maxMs`, with jitter (a uniformly random delay in the upper half) so that many agents
 * losing the same controller do not come back in lockstep. Never above `maxMs`, never below half
 * of `minMs`. `random` is Math.random unless a test gives one.
 */
export function reconnectDelayMs(failures: number, bounds: BackoffBounds, random: () => number = Math.random): number {
  const minMs = Math.max(1, Math.min(bounds.minMs, bounds.maxMs));
  const ceiling = Math.min(bounds.maxMs, minMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * gRPC channel options for a connection between controller and agent: reconnect attempts at most
 * `maxBackoffMs` apart (the grpc-js ceiling is set 20% lower: it adds up to 20% jitter), and HTTP/2 keepalive pings so that a peer that
 * vanished without closing the connection (power loss, a partition) is noticed within ~15 s rather
 * than when TCP gives up, and the channel reconnects (or the agent fails over) instead of waiting.
 * `grpc.min_reconnect_backoff_ms` is read by gRPC C-core peers only; grpc-js ignores it.
 */
export function reconnectChannelOptions(maxBackoffMs: number = DEFAULT_RECONNECT_MAX_MS): ChannelOptions {
  const ceiling = Math.max(1, Math.floor(maxBackoffMs / (1 + GRPC_JS_JITTER)));
  const initial = Math.min(1_000, ceiling);
  return {
    'grpc.initial_reconnect_backoff_ms': initial,
    'grpc.min_reconnect_backoff_ms': initial,
    'grpc.max_reconnect_backoff_ms': ceiling,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
  };
}
