/** The parsed answer of one REST call: status and JSON body (null for an empty body, e.g. 204). */
export interface RestAnswer {
  readonly status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

/**
 * A REST caller over real HTTP for tests that run a controller on a socket. `baseUrl` is read on
 * every call, so a test can restart the controller on another port.
 */
export function restCaller(baseUrl: () => string) {
  return async (method: string, path: string, token: string, body?: unknown): Promise<RestAnswer> => {
    const res = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

/**
 * Polls `check` until it holds; throws after `timeoutMs` (with `detail()` appended) so a broken
 * feature fails with a message instead of hanging. Not a timing assertion: limits are generous.
 */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000, detail?: () => string, intervalMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail ? `; ${detail()}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
