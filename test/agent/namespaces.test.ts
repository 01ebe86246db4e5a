import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config.js';

// Issue 15, item 9: `npm test` after `npm start` on one machine failed because runtime tests
// labelled their containers like `npm start`'s agent (remotegpu.managed=true), which then removed
// them as orphans. Every test that makes Docker objects through the runtime or runs an agent uses
// a label namespace of its own; an agent without a namespace only ever sees `true`-labelled objects
// (exact label filters, docker-namespace.test.ts), and no namespace may be called `true`.

const ROOT = join(import.meta.dirname, '..');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
}

/** The text of each `new DockerRuntime({ … })` call (balanced braces). */
function runtimeCalls(source: string): string[] {
  const calls: string[] = [];
  for (let at = source.indexOf('new DockerRuntime('); at >= 0; at = source.indexOf('new DockerRuntime(', at + 1)) {
    let depth = 0;
    let end = at + 'new DockerRuntime('.length;
    for (; end < source.length; end++) {
      const ch = source[end];
      if (ch === '(') depth++;
      else if (ch === ')') {
        if (depth === 0) break;
        depth--;
      }
    }
    calls.push(source.slice(at, end + 1));
  }
  return calls;
}

describe('test label namespaces', () => {
  it('every DockerRuntime a test makes has its own managedBy', () => {
    const missing: string[] = [];
    for (const file of testFiles(ROOT).filter((f) => !f.endsWith('namespaces.test.ts'))) {
      for (const call of runtimeCalls(readFileSync(file, 'utf8'))) {
        // The one runtime without a namespace on purpose (it only reads, and removes an id nobody else has).
        if (!/\bmanagedBy\b|npm start's namespace on purpose/.test(call)) missing.push(`${relative(ROOT, file)}: ${call.slice(0, 80)}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every test that runs an agent process or the local platform sets REMOTEGPU_NAMESPACE', () => {
    const missing = testFiles(ROOT)
      .filter((file) => /agent\/main\.ts|startLocalPlatform\(/.test(readFileSync(file, 'utf8')))
      // platformEnvAt (scripts/local-platform.ts) sets it from its required `namespace`.
      .filter((file) => !/REMOTEGPU_NAMESPACE|platformEnvAt\(\{[^}]*\bnamespace\b/.test(readFileSync(file, 'utf8')))
      .map((file) => relative(ROOT, file));
    expect(missing).toEqual([]);
  });

  it("no agent may take the namespace 'true' (the label of agents without one)", () => {
    expect(() => loadAgentConfig({ REMOTEGPU_NAMESPACE: 'true' }, {})).toThrow(/'true' is what an agent without a namespace uses/);
    expect(loadAgentConfig({ REMOTEGPU_NAMESPACE: 'dev-a' }, {}).namespace).toBe('dev-a');
  });
});
