import { CliError, EXIT } from './errors.js';

/** How one kind of thing is named on the command line (by id, or by a name that may repeat). */
export interface Naming<T> {
  /** `environment`, `host`, … and its plural. */
  readonly what: string;
  readonly plural: string;
  readonly id: (item: T) => string | number;
  /** The names an argument may give instead of the id (a name, a hostname, a fingerprint). */
  readonly names: (item: T) => readonly string[];
  /** Said after "not found", e.g. "(see `remotegpu env ls`)". */
  readonly hint: string;
}

/**
 * The one item `ref` names: the item with that id, else the only one with that name. None is exit
 * 4; a name several items share is exit 2, listing their ids.
 */
export function pickOne<T>(items: readonly T[], ref: string, naming: Naming<T>): T {
  const byId = items.find((item) => String(naming.id(item)) === ref);
  if (byId) return byId;
  const named = items.filter((item) => naming.names(item).includes(ref));
  if (named.length === 0) throw new CliError(`no ${naming.what} named or with id ${JSON.stringify(ref)} ${naming.hint}`, EXIT.notFound);
  if (named.length > 1) throw new CliError(`${named.length} ${naming.plural} are named ${JSON.stringify(ref)}: use an id (${named.map(naming.id).join(', ')})`, EXIT.usage);
  return named[0]!;
}

/** How to find one kind of thing by an argument: straight by its id, else in the whole list. */
export interface Resolver<T, D extends T = T> {
  /** Whether `ref` has the form of an id (a name may have it too, hence the fallback). */
  readonly isId: (ref: string) => boolean;
  /** GET the item with id `ref` (a 404 is a CliError with exit 4). */
  readonly byId: (ref: string) => Promise<D>;
  /** Every item, all pages. */
  readonly list: () => Promise<readonly T[]>;
  readonly naming: Naming<T>;
}

/**
 * The one item `ref` names, as pickOne decides, without paging through the whole list when `ref`
 * looks like an id: that id is asked for first, and only a 404 (no such id: it may be a name)
 * falls back to the list. So the answer, messages and exit codes are pickOne's.
 */
export async function resolve<T, D extends T = T>(ref: string, { isId, byId, list, naming }: Resolver<T, D>): Promise<T | D> {
  if (isId(ref)) {
    try {
      return await byId(ref);
    } catch (err) {
      if (!(err instanceof CliError) || err.exitCode !== EXIT.notFound) throw err;
    }
  }
  return pickOne(await list(), ref, naming);
}
