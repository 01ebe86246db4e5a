/**
 * Structure report: the four figures that `npm run lint` and the clean-up work track, for one tree.
 *
 *   npx tsx scripts/structure-report.ts [DIR]      (DIR defaults to the repository root)
 *
 * 1. source files over 300 lines (every line counted, as ESLint max-lines does);
 * 2. functions over 60 lines, and the count over 50 (counted as ESLint max-lines-per-function does:
 *    from the function's first line to its last, methods from their name or modifiers, IIFEs skipped);
 * 3. import circles (madge, the same command as `npm run lint:cycles`, run inside DIR);
 * 4. `duplicates` pairs: the raw total, and the pairs left after dropping those with a side in gen/
 *    and those where both sides are route declarations (createRoute blocks in controller/api/*.routes.ts).
 *
 * 1 and 2 leave out tests (test/, *.test.ts), gen/ and controller/db/migrations/. bench/ is counted but
 * marked, since the lint config turns the size rules off there. madge comes from this repository's
 * node_modules, so DIR needs none of its own. `duplicates` must be on PATH (it is a workstation tool).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const MAX_FILE_LINES = 300;
const MAX_FUNCTION_LINES = 60;
const ALSO_FUNCTION_LINES = 50;
const SOURCE_EXT = /\.(ts|mts|cts|js|mjs|cjs)$/;
const EXCLUDED = [/^test\//, /\.test\.[cm]?[jt]s$/, /^gen\//, /^controller\/db\/migrations\//, /(^|\/)(node_modules|dist)\//];
const CYCLE_DIRS = ['controller', 'agent', 'common', 'scripts', 'bench'];
const DUPLICATES_ARGS = ['--most', '200', '--seconds', '120'];
const REPO_ROOT = path.resolve(import.meta.dirname, '..');

interface FunctionLength {
  file: string;
  line: number;
  name: string;
  lines: number;
}

interface DuplicatePair {
  row: string;
  a: { file: string; from: number; to: number };
  b: { file: string; from: number; to: number };
}

/** Lines as ESLint counts them: a final line break does not start another line. */
function countLines(text: string): number {
  const lines = text.split(/\r\n|[\r\n\u2028\u2029]/);
  return lines.length > 1 && lines.at(-1) === '' ? lines.length - 1 : lines.length;
}

function walk(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.name === '.git' || entry.name === 'node_modules') return [];
    return entry.isDirectory() ? walk(full, base) : [path.relative(base, full).split(path.sep).join('/')];
  });
}

/** Files git tracks or would track (working tree as it is); every file below DIR outside a checkout. */
function listFiles(dir: string): string[] {
  const git = spawnSync('git', ['-C', dir, 'ls-files', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' });
  const files = git.status === 0 ? git.stdout.split('\n').filter(Boolean) : walk(dir);
  return [...new Set(files)].filter((f) => existsSync(path.join(dir, f)) && statSync(path.join(dir, f)).isFile()).sort();
}

function sourceFiles(dir: string): string[] {
  return listFiles(dir).filter((f) => SOURCE_EXT.test(f) && !EXCLUDED.some((re) => re.test(f)));
}

function lineOf(sf: ts.SourceFile, pos: number): number {
  return sf.getLineAndCharacterOfPosition(pos).line + 1;
}

function propertyName(name: ts.PropertyName | ts.BindingName | undefined, sf: ts.SourceFile): string {
  if (!name) return '<anonymous>';
  return ts.isIdentifier(name) || ts.isStringLiteral(name) || ts.isPrivateIdentifier(name) ? name.text : name.getText(sf);
}

function className(node: ts.Node): string {
  const owner = node.parent;
  if (owner && (ts.isClassDeclaration(owner) || ts.isClassExpression(owner))) return `${owner.name?.text ?? '<class>'}.`;
  return '';
}

/** Where an anonymous function stands: `const x = () =>`, `{ x: () => }`, or an argument of `f(...)`. */
function contextName(node: ts.Node, sf: ts.SourceFile): string {
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent)) return propertyName(parent.name, sf);
  if (ts.isPropertyAssignment(parent)) return propertyName(parent.name, sf);
  if (ts.isPropertyDeclaration(parent)) return `${className(parent)}${propertyName(parent.name, sf)}`;
  if (ts.isCallExpression(parent)) {
    const callee = parent.expression.getText(sf).replace(/\s+/g, '');
    const label = parent.arguments[0] && ts.isStringLiteralLike(parent.arguments[0]) ? `'${parent.arguments[0].text}'` : '';
    return `<callback of ${callee.length > 40 ? `${callee.slice(0, 40)}…` : callee}(${label})>`;
  }
  return '<anonymous>';
}

function functionName(node: ts.FunctionLikeDeclaration, sf: ts.SourceFile): string {
  if (ts.isConstructorDeclaration(node)) return `${className(node)}constructor`;
  if (ts.isMethodDeclaration(node) || ts.isGetAccessor(node) || ts.isSetAccessor(node)) {
    return `${className(node)}${propertyName(node.name, sf)}`;
  }
  if (ts.isFunctionDeclaration(node)) return node.name?.text ?? '<default export>';
  if (ts.isFunctionExpression(node) && node.name) return node.name.text;
  return contextName(node, sf);
}

/** ESLint skips immediately invoked functions (its IIFEs option is off by default). */
function isIIFE(node: ts.Node): boolean {
  if (!ts.isFunctionExpression(node) && !ts.isArrowFunction(node)) return false;
  let outer: ts.Node = node;
  while (ts.isParenthesizedExpression(outer.parent)) outer = outer.parent;
  return ts.isCallExpression(outer.parent) && outer.parent.expression === outer;
}

function functionLengths(dir: string, file: string): FunctionLength[] {
  const text = readFileSync(path.join(dir, file), 'utf8');
  const kind = /\.[cm]?js$/.test(file) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const found: FunctionLength[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body && !isIIFE(node)) {
      const fn = node as ts.FunctionLikeDeclaration;
      const line = lineOf(sf, fn.getStart(sf));
      found.push({ file, line, name: functionName(fn, sf), lines: lineOf(sf, fn.end) - line + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function madgeCircles(dir: string): { command: string; circles: string[][] } {
  const madge = path.join(REPO_ROOT, 'node_modules', '.bin', 'madge');
  const dirs = CYCLE_DIRS.filter((d) => existsSync(path.join(dir, d)));
  const args = ['--circular', '--json', '--extensions', 'ts', '--ts-config', 'tsconfig.json', ...dirs];
  const run = spawnSync(madge, args, { cwd: dir, encoding: 'utf8' });
  const json = run.stdout.slice(run.stdout.indexOf('['));
  if (!json.startsWith('[')) throw new Error(`madge gave no JSON (exit ${run.status}): ${run.stderr}`);
  return { command: `madge ${args.filter((a) => a !== '--json').join(' ')}`, circles: JSON.parse(json) as string[][] };
}

function parseSide(text: string): DuplicatePair['a'] {
  const match = /^(.+):(\d+)-(\d+)$/.exec(text);
  if (!match) throw new Error(`duplicates: cannot read place ${text}`);
  return { file: match[1]!, from: Number(match[2]), to: Number(match[3]) };
}

function runDuplicates(dir: string): { command: string; header: string[]; pairs: DuplicatePair[] } {
  const out = execFileSync('duplicates', ['--repo', dir, ...DUPLICATES_ARGS], { encoding: 'utf8' });
  const lines = out.split('\n').filter(Boolean);
  const pairs = lines.flatMap((row) => {
    const match = /^D\d+ (\S+) ~ (\S+)/.exec(row);
    return match ? [{ row, a: parseSide(match[1]!), b: parseSide(match[2]!) }] : [];
  });
  const header = lines.filter((l) => !/^D\d+ /.test(l));
  return { command: `duplicates --repo ${dir} ${DUPLICATES_ARGS.join(' ')}`, header, pairs };
}

/** Line spans of the createRoute(...) calls in a routes file. */
function createRouteSpans(dir: string, file: string): Array<[number, number]> {
  const sf = ts.createSourceFile(file, readFileSync(path.join(dir, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const spans: Array<[number, number]> = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'createRoute') {
      spans.push([lineOf(sf, node.getStart(sf)), lineOf(sf, node.end)]);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return spans;
}

/** A side is a route declaration when at least half its lines lie inside createRoute(...) calls. */
function isRouteDeclaration(dir: string, side: DuplicatePair['a'], cache: Map<string, Array<[number, number]>>): boolean {
  if (!/^controller\/api\/[^/]+\.routes\.ts$/.test(side.file)) return false;
  if (!cache.has(side.file)) cache.set(side.file, createRouteSpans(dir, side.file));
  const spans = cache.get(side.file)!;
  let inside = 0;
  for (let line = side.from; line <= side.to; line++) if (spans.some(([s, e]) => line >= s && line <= e)) inside++;
  return inside * 2 >= side.to - side.from + 1;
}

function classifyDuplicates(dir: string, pairs: DuplicatePair[]) {
  const cache = new Map<string, Array<[number, number]>>();
  const gen = pairs.filter((p) => p.a.file.startsWith('gen/') || p.b.file.startsWith('gen/'));
  const rest = pairs.filter((p) => !gen.includes(p));
  const routes = rest.filter((p) => isRouteDeclaration(dir, p.a, cache) && isRouteDeclaration(dir, p.b, cache));
  return { gen, routes, counted: rest.filter((p) => !routes.includes(p)) };
}

function bench(file: string): string {
  return file.startsWith('bench/') ? '  (bench/: lint rule off there)' : '';
}

function reportFiles(dir: string, files: string[]): void {
  const big = files
    .map((file) => ({ file, lines: countLines(readFileSync(path.join(dir, file), 'utf8')) }))
    .filter((f) => f.lines > MAX_FILE_LINES)
    .sort((x, y) => y.lines - x.lines);
  console.log(`\n## 1. Source files over ${MAX_FILE_LINES} lines: ${big.length} (of ${files.length} source files)`);
  for (const f of big) console.log(`  ${String(f.lines).padStart(5)}  ${f.file}${bench(f.file)}`);
}

function reportFunctions(dir: string, files: string[]): void {
  const all = files.flatMap((file) => functionLengths(dir, file)).sort((x, y) => y.lines - x.lines);
  const over = all.filter((f) => f.lines > MAX_FUNCTION_LINES);
  const over50 = all.filter((f) => f.lines > ALSO_FUNCTION_LINES).length;
  console.log(`\n## 2. Functions over ${MAX_FUNCTION_LINES} lines: ${over.length}; over ${ALSO_FUNCTION_LINES} lines: ${over50} (of ${all.length} functions)`);
  for (const f of over) console.log(`  ${String(f.lines).padStart(5)}  ${f.file}:${f.line}  ${f.name}${bench(f.file)}`);
}

function reportCircles(dir: string): void {
  const { command, circles } = madgeCircles(dir);
  console.log(`\n## 3. Import circles: ${circles.length}   (${command}; type-only imports count)`);
  for (const circle of circles) console.log(`  ${[...circle, circle[0]].join(' > ')}`);
}

function reportDuplicates(dir: string): void {
  const { command, header, pairs } = runDuplicates(dir);
  const { gen, routes, counted } = classifyDuplicates(dir, pairs);
  console.log(`\n## 4. duplicates pairs: ${counted.length} counted   (raw total ${pairs.length}; ${gen.length} with a side in gen/, ${routes.length} route declaration ~ route declaration)`);
  console.log(`  command: ${command}`);
  for (const line of header) console.log(`  ${line}`);
  for (const p of counted) console.log(`  ${p.row}`);
  if (routes.length) console.log('  left out as route declaration ~ route declaration:');
  for (const p of routes) console.log(`    ${p.row}`);
}

function main(): void {
  const dir = path.resolve(process.argv[2] ?? REPO_ROOT);
  const head = spawnSync('git', ['-C', dir, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).stdout.trim();
  const files = sourceFiles(dir);
  console.log(`# Structure report for ${dir}${head ? ` (HEAD ${head}, working tree as it is)` : ''}`);
  console.log('# files and functions leave out test/, *.test.ts, gen/, controller/db/migrations/');
  reportFiles(dir, files);
  reportFunctions(dir, files);
  reportCircles(dir);
  reportDuplicates(dir);
}

main();
