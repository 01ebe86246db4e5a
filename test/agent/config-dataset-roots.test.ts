import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config.js';

// REMOTEGPU_DATASET_ROOTS: the host directories an agent lets environments mount datasets from.
describe('REMOTEGPU_DATASET_ROOTS', () => {
  it('is empty by default: no dataset roots', () => {
    expect(loadAgentConfig({}).datasetRoots).toEqual([]);
    expect(loadAgentConfig({ REMOTEGPU_DATASET_ROOTS: '  ' }).datasetRoots).toEqual([]);
  });

  it('lists absolute directories separated by ":" or ",", once each', () => {
    const config = loadAgentConfig({ REMOTEGPU_DATASET_ROOTS: '/srv/datasets:/mnt/nfs/data, /data,/srv/datasets' });
    expect(config.datasetRoots).toEqual(['/srv/datasets', '/mnt/nfs/data', '/data']);
    expect(Object.isFrozen(config.datasetRoots)).toBe(true);
  });

  it.each([
    ['/', '"/" cannot be a dataset root'],
    ['/srv/datasets:/', '"/" cannot be a dataset root'],
    ['datasets', '"datasets" must be an absolute path'],
    ['/srv/../etc', '"/srv/../etc" must not contain ".."'],
    ['/srv//datasets', '"/srv//datasets" is not normalized (did you mean "/srv/datasets"?)'],
    ['/srv/datasets/', '"/srv/datasets/" is not normalized (did you mean "/srv/datasets"?)'],
    ['/srv/./datasets', 'is not normalized'],
  ])('refuses %s with a configuration error', (value, message) => {
    expect(() => loadAgentConfig({ REMOTEGPU_DATASET_ROOTS: value })).toThrow(/^invalid configuration: REMOTEGPU_DATASET_ROOTS=/);
    expect(() => loadAgentConfig({ REMOTEGPU_DATASET_ROOTS: value })).toThrow(message);
  });
});
