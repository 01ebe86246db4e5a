// Checks the layering that file-level circle detection (madge) cannot see:
//   - controller/ and agent/ never import each other;
//   - cli/ (the `remotegpu` command) imports only cli/, common/ and gen/: it talks to the controller
//     through the generated REST client, never through its code;
//   - the folders (and top-level files) inside controller/ import each other without a circle (a folder may import a
//     folder below it, never one that imports it back, directly or through others).
// Prints the folder graph and exits 1 on a violation. Part of `npm run lint`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const IMPORT = /(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]/g;

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'migrations' ? [] : tsFiles(path);
    return /\.tsx?$/.test(name) ? [path] : [];
  });
}

/**
 * Top folder (controller/agent/common/...) and, inside controller/, the sub-folder of a file; a
 * file directly in controller/ is a unit of its own (the composition root sits above every
 * folder, `ids.ts` and `config.ts` below them).
 */
function unitOf(file: string): { top: string; unit: string } {
  const parts = relative(root, file).replace(/\.js$/, '.ts').split('/');
  const top = parts[0]!;
  const unit = top === 'controller' ? parts.slice(0, 2).join('/') : top;
  return { top, unit };
}

const problems: string[] = [];
const edges = new Map<string, Set<string>>();
for (const file of [...tsFiles(join(root, 'controller')), ...tsFiles(join(root, 'agent')), ...tsFiles(join(root, 'cli'))]) {
  const from = unitOf(file);
  for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
    const to = unitOf(resolve(dirname(file), match[1]!));
    if ((from.top === 'controller' && to.top === 'agent') || (from.top === 'agent' && to.top === 'controller')) {
      problems.push(`${relative(root, file)} imports ${match[1]}: controller/ and agent/ never import each other`);
    }
    if (from.top === 'cli' && !['cli', 'common', 'gen'].includes(to.top)) {
      problems.push(`${relative(root, file)} imports ${match[1]}: cli/ imports only cli/, common/ and gen/`);
    }
    if (from.top === 'controller' && to.top === 'controller' && from.unit !== to.unit) {
      if (!edges.has(from.unit)) edges.set(from.unit, new Set());
      edges.get(from.unit)!.add(to.unit);
    }
  }
}

// A circle between folders: depth-first search for a back edge.
const state = new Map<string, 'open' | 'done'>();
function visit(unit: string, path: string[]): void {
  state.set(unit, 'open');
  for (const next of edges.get(unit) ?? []) {
    if (state.get(next) === 'open') problems.push(`folder circle: ${[...path.slice(path.indexOf(next)), unit, next].join(' → ')}`);
    else if (!state.has(next)) visit(next, [...path, unit]);
  }
  state.set(unit, 'done');
}
for (const unit of [...edges.keys()].sort()) if (!state.has(unit)) visit(unit, []);

for (const [unit, targets] of [...edges].sort()) console.log(`${unit} → ${[...targets].sort().join(', ')}`);
if (problems.length > 0) {
  for (const p of problems) console.error(`layering: ${p}`);
  process.exit(1);
}
console.log('layering: no folder circle in controller/, controller/ and agent/ independent');
