import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { DB_TARGETS } from '../test/helpers/databases.js';
import { startTestController } from '../test/helpers/controller.js';
import { CLI_ARGS, cliHome, cliLogin } from '../test/helpers/cli.js';
import { median } from './bench-util.js';
import { bulkEnvironments } from './seed-environments.js';

// What a user waits for at the prompt: wall time of whole `remotegpu` processes (start, request,
// output, exit) against a real controller (embedded PGlite) holding ROWS environments of the
// admin. The compiled bin (dist/cli/main.js, as installed: run `npm run build` first) and the
// checkout's `npm run cli` path (tsx) side by side; the median of RUNS runs each.
// Run: npm run build && npx tsx bench/cli-latency.ts [rows]. Writes bench/results/cli-latency.md.

const ROWS = Number(process.argv[2] ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const ADMIN = 'rgpu_bench-cli-admin-token-0123456789abcdef';
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const BUILT = path.join(ROOT, 'dist/cli/main.js');

const ctl = await startTestController(DB_TARGETS.find((t) => t.name === 'pglite')!, { admin: ADMIN, join: 'bench-cli-join-token-0123456789' });
try {
  const db = ctl.controller.database.db;
  const image = await db.selectFrom('images').select('id').where('name', '=', 'img:1').executeTakeFirstOrThrow();
  const admin = await db.selectFrom('users').select('id').where('name', '=', 'admin').executeTakeFirstOrThrow();
  await bulkEnvironments(db, { count: ROWS, ownerIds: [admin.id], workspaceIds: [], workspaceEvery: 1, imageId: image.id, tieEvery: 7, prefix: 'env-b' });
  const home = cliHome('rgpu-bench-cli-');
  await cliLogin(home, ctl.controller.httpUrl, ADMIN);

  // Asynchronous: the controller runs in this process and must answer while the CLI waits.
  const run = promisify(execFile);
  const time = async (argv: readonly string[]): Promise<number> => {
    const started = performance.now();
    await run(process.execPath, [...argv], { cwd: home, env: { PATH: process.env.PATH, HOME: home }, maxBuffer: 256 * 2 ** 20 });
    return performance.now() - started;
  };
  const medianOf = async (argv: readonly string[]): Promise<number> => {
    const samples: number[] = [];
    for (let i = 0; i < RUNS; i++) samples.push(await time(argv));
    return median(samples);
  };
  const commands: [string, string[]][] = [
    ['--version (no request)', ['--version']],
    ['whoami', ['whoami']],
    [`env ls (${ROWS} environments, table)`, ['env', 'ls']],
    [`env ls --json (${ROWS} environments)`, ['env', 'ls', '--json']],
    ['env get ID', ['env', 'get', 'env-b00000001']],
    [`env get NAME (name looked up among ${ROWS})`, ['env', 'get', 'bulk 1']],
  ];
  const rows: string[] = [];
  for (const [label, args] of commands) {
    const built = existsSync(BUILT) ? await medianOf([BUILT, ...args]) : null;
    const dev = await medianOf([...CLI_ARGS, ...args]);
    rows.push(`| ${label} | ${built === null ? 'not built' : built.toFixed(0)} | ${dev.toFixed(0)} |`);
    console.log(`${label}: built ${built === null ? '-' : `${built.toFixed(0)} ms`}, tsx ${dev.toFixed(0)} ms`);
  }
  const text = [
    '# CLI latency',
    '',
    `Wall time of whole \`remotegpu\` processes (median of ${RUNS}), against a local controller (embedded PGlite, loopback) holding ${ROWS} environments.`,
    `Measured ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}. Run: \`npm run build && npx tsx bench/cli-latency.ts ${ROWS}\`.`,
    '',
    '| command | built bin (dist/cli/main.js), ms | tsx (npm run cli), ms |',
    '| --- | ---: | ---: |',
    ...rows,
    '',
  ].join('\n');
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench/results/cli-latency.md'), text);
  console.log(`wrote bench/results/cli-latency.md (git ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()})`);
} finally {
  await ctl.close();
}
