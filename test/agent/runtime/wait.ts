/**
 * Polls `predicate` until it holds; throws after `limitMs` so a broken feature fails the test
 * with a message instead of hanging it. Not a timing assertion: the limit is generous.
 */
export async function waitFor(predicate: () => boolean | Promise<boolean>, limitMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
