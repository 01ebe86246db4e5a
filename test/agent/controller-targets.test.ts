import { describe, expect, it } from 'vitest';
import { ControllerTargets, expand, type LookupAll } from '../../agent/controller-targets.js';

// Which controller address the agent dials: configured addresses in turn, a name resolving to
// several addresses standing for each of them, resolved again after every address was tried.

const table: Record<string, string[]> = {
  'replicas.example': ['10.0.0.1', '10.0.0.2', 'fd00::3'],
  'one.example': ['10.0.0.9'],
};
const lookup: LookupAll = async (host) => {
  if (!table[host]) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
  return table[host];
};

describe('controller targets', () => {
  it('expands a name with several addresses, keeps literal addresses and names with one or none', async () => {
    expect(await expand(['replicas.example:9090'], lookup)).toEqual(['10.0.0.1:9090', '10.0.0.2:9090', '[fd00::3]:9090']);
    expect(await expand(['one.example:9090', 'gone.example:9090', '127.0.0.1:9090', '[::1]:9090'], lookup)).toEqual([
      'one.example:9090',
      'gone.example:9090',
      '127.0.0.1:9090',
      '[::1]:9090',
    ]);
    expect(await expand(['10.0.0.1:9090', 'replicas.example:9090'], lookup)).toEqual(['10.0.0.1:9090', '10.0.0.2:9090', '[fd00::3]:9090']);
  });

  it('goes round-robin over the addresses, resolving names again after the last one', async () => {
    let resolutions = 0;
    const counting: LookupAll = async (host) => (resolutions++, lookup(host));
    const targets = new ControllerTargets(['a.example:1', 'replicas.example:2'], counting);
    const seen: string[] = [];
    for (let i = 0; i < 8; i++) {
      seen.push(await targets.current());
      expect(await targets.current()).toBe(seen.at(-1)); // stays until advanced
      targets.advance();
    }
    expect(seen).toEqual(['a.example:1', '10.0.0.1:2', '10.0.0.2:2', '[fd00::3]:2', 'a.example:1', '10.0.0.1:2', '10.0.0.2:2', '[fd00::3]:2']);
    expect(resolutions).toBe(4); // two names, resolved twice
  });

  it('with one literal address, always that one', async () => {
    const targets = new ControllerTargets(['127.0.0.1:9090'], async () => {
      throw new Error('no lookup for an IP address');
    });
    for (let i = 0; i < 3; i++) {
      expect(await targets.current()).toBe('127.0.0.1:9090');
      targets.advance();
    }
  });
});
