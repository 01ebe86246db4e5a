import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readMachineId } from '../../../agent/discovery/host.js';

// The machine id the agent reports survives a reset of its identity: the controller links a host
// that registers again from the same machine to the host it was.

describe('readMachineId', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-machine-id-'));
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the first usable file, trimmed', () => {
    const systemd = file('etc-machine-id', '4c4c4544003957108052b4c04f384833\n');
    expect(readMachineId(undefined, [path.join(dir, 'missing'), systemd])).toBe('4c4c4544003957108052b4c04f384833');
  });

  it('prefers the configured value (REMOTEGPU_MACHINE_ID)', () => {
    expect(readMachineId('rack4-node7', [file('a', 'x\n')])).toBe('rack4-node7');
  });

  it("is '' without a usable file (missing, empty, or garbage)", () => {
    expect(readMachineId(undefined, [path.join(dir, 'none'), file('empty', '\n'), file('garbage', 'not a machine id\n')])).toBe('');
  });

  it('reads this machine when it has one', () => {
    expect(readMachineId(undefined)).toMatch(/^([A-Za-z0-9._-]{1,128})?$/);
  });
});
