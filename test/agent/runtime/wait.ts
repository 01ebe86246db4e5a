import { waitUntil } from '../../helpers/rest.js';

/** Polls `predicate` until it holds; throws after `limitMs` (see waitUntil). */
export function waitFor(predicate: () => boolean | Promise<boolean>, limitMs = 30_000, what = 'condition'): Promise<void> {
  return waitUntil(what, predicate, limitMs, undefined, 100);
}
