import { describe, expect, it } from 'vitest';
import { CliError, EXIT } from '../../cli/errors.js';
import { resolve, type Naming } from '../../cli/pick.js';

// resolve(): an argument that looks like an id is asked for by id (one request instead of every
// page), and only a 404 falls back to the list, so names, messages and exit codes stay pickOne's.

interface Item {
  id: string;
  name: string;
}

const naming: Naming<Item> = { what: 'thing', plural: 'things', id: (i) => i.id, names: (i) => [i.name], hint: '(see `things`)' };
const items: Item[] = [
  { id: 'id-1', name: 'a' },
  { id: 'id-2', name: 'b' },
  { id: 'id-3', name: 'b' },
  { id: 'id-4', name: 'id-9' },
];

/** A resolver over `items` that counts its requests; byId answers 404 (exit 4) for an unknown id, or `fail` when given. */
function resolver(fail?: CliError) {
  const calls = { byId: 0, list: 0 };
  const how = {
    isId: (ref: string) => ref.startsWith('id-'),
    byId: async (ref: string) => {
      calls.byId++;
      if (fail) throw fail;
      const item = items.find((i) => i.id === ref);
      if (!item) throw new CliError(`${ref} not found`, EXIT.notFound);
      return item;
    },
    list: async () => {
      calls.list++;
      return items;
    },
    naming,
  };
  return { how, calls };
}

const rejection = async (promise: Promise<unknown>) => {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CliError);
  return err as CliError;
};

describe('resolve', () => {
  it('takes an id straight, without the list', async () => {
    const { how, calls } = resolver();
    expect(await resolve('id-2', how)).toEqual(items[1]);
    expect(calls).toEqual({ byId: 1, list: 0 });
  });

  it('looks a name up in the list, without asking by id', async () => {
    const { how, calls } = resolver();
    expect(await resolve('a', how)).toEqual(items[0]);
    expect(calls).toEqual({ byId: 0, list: 1 });
  });

  it('falls back to the list when an id-like ref is no id (404): it may be a name', async () => {
    const { how, calls } = resolver();
    expect(await resolve('id-9', how)).toEqual(items[3]);
    expect(calls).toEqual({ byId: 1, list: 1 });
  });

  it('ends as pickOne does: exit 4 for nothing, exit 2 for a shared name', async () => {
    const missing = await rejection(resolve('id-0', resolver().how));
    expect(missing.exitCode).toBe(EXIT.notFound);
    expect(missing.message).toBe('no thing named or with id "id-0" (see `things`)');
    const shared = await rejection(resolve('b', resolver().how));
    expect(shared.exitCode).toBe(EXIT.usage);
    expect(shared.message).toBe('2 things are named "b": use an id (id-2, id-3)');
  });

  it('passes any other error of the id request on, without the list', async () => {
    const { how, calls } = resolver(new CliError('forbidden', EXIT.auth));
    expect((await rejection(resolve('id-1', how))).exitCode).toBe(EXIT.auth);
    expect(calls).toEqual({ byId: 1, list: 0 });
  });
});
