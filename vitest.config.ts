import { existsSync } from 'node:fs';
import { configDefaults, defineConfig } from 'vitest/config';

// Two projects. "main": every test file, in parallel workers (integration tests share one Docker
// engine and one PostgreSQL server, so each uses its own database / container names). "faults":
// the fault suite (test/faults/), which kills processes, restarts its own PostgreSQL server and,
// in CI, restarts dockerd and partitions loopback addresses with iptables: it runs after "main"
// (sequence.groupOrder), one file at a time.
const ci = process.env.CI === 'true';
const hostDisruptive = ci || process.env.REMOTEGPU_FAULTS_HOST === '1';
// The suite starts a PostgreSQL server of its own and runs agents (root, a Docker engine): in CI it
// must (anything missing fails there); elsewhere it runs where all of that is at hand.
const pgBinaries = ['/usr/local/bin', '/usr/lib/postgresql/15/bin', '/usr/bin', process.env.REMOTEGPU_PG_BIN ?? ''].some((d) => d && existsSync(`${d}/pg_ctl`));
const docker = Boolean(process.env.DOCKER_HOST) || existsSync('/var/run/docker.sock');
const faultFiles = ci || (pgBinaries && docker && process.getuid?.() === 0) ? ['test/faults/**/*.test.ts'] : [];
// Host-disruptive scenarios (dockerd restart, iptables) are defined only where they may run:
// never on a developer's machine where `npm start` may be running, unless asked for.
const faultExclude = hostDisruptive ? [] : ['test/faults/**/*.host.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: process.env.CI ? { json: 'test-results.json' } : undefined,
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/faults/**'],
          sequence: { groupOrder: 0 },
        },
      },
      ...(faultFiles.length > 0
        ? [
            {
              extends: true,
              test: {
                name: 'faults',
                include: faultFiles,
                exclude: [...configDefaults.exclude, ...faultExclude],
                fileParallelism: false,
                testTimeout: 300_000,
                hookTimeout: 180_000,
                globalSetup: ['test/faults/harness/global-setup.ts'],
                sequence: { groupOrder: 1 },
              },
            },
          ]
        : []),
    ],
  },
});
