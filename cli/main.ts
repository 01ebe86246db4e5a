#!/usr/bin/env node
// The `remotegpu` command (package.json "bin"; `npm run cli -- ...` from a checkout).
import { processIo } from './cli.js';
import { runCli } from './program.js';

const io = processIo();
// `remotegpu env ls | head`: a reader that goes away early is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
process.exitCode = await runCli(process.argv.slice(2), io);
