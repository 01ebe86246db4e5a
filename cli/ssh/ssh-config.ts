import { CliError } from '../errors.js';
import { sshConfigPath, type SshTarget } from './target.js';

/** The domain every managed `Host` name ends in: `dev.remotegpu`, `env-abc.remotegpu`. */
export const HOST_SUFFIX = '.remotegpu';

/**
 * An environment name as a host name: lower case, every run of characters other than a-z, 0-9
 * and '-' made one '-', no '-' at either end ('' when nothing is left: only the id alias then).
 */
export function slug(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** One `Host` entry of the managed block: the names it answers to and the environment. */
export interface HostEntry {
  readonly names: readonly string[];
  readonly target: SshTarget;
}

/**
 * The entries for `targets`: each answers to `<env_id>.remotegpu`, and to `<slug>.remotegpu`
 * unless another environment has the same slug (or an id equal to it): then neither gets the
 * name, and `shared` lists those slugs so the caller can say so.
 */
export function hostEntries(targets: readonly SshTarget[]): { entries: HostEntry[]; shared: string[] } {
  const count = new Map<string, number>();
  const ids = new Set(targets.map((t) => t.envId));
  for (const t of targets) {
    const s = slug(t.name);
    if (s) count.set(s, (count.get(s) ?? 0) + 1);
  }
  const shared = [...count].filter(([s, n]) => n > 1 || ids.has(s)).map(([s]) => s);
  const entries = targets.map((target) => {
    const s = slug(target.name);
    const names = s && !shared.includes(s) ? [`${s}${HOST_SUFFIX}`, `${target.envId}${HOST_SUFFIX}`] : [`${target.envId}${HOST_SUFFIX}`];
    return { names, target };
  });
  return { entries, shared: shared.sort() };
}

/** The markers around one context's block; a context name is kept to one line. */
export function markers(context: string): { begin: string; end: string } {
  const name = context.replace(/[\r\n]+/g, ' ');
  return { begin: `# ----- BEGIN remotegpu (context ${name}) -----`, end: `# ----- END remotegpu (context ${name}) -----` };
}

/** One `Host` entry as ssh_config lines (two-space indented options, a blank line after). */
export function renderEntry(entry: HostEntry, knownHosts: string): string {
  const t = entry.target;
  return [
    `Host ${entry.names.join(' ')}`,
    `  HostName ${t.host}`,
    `  Port ${t.port}`,
    `  User ${t.user}`,
    `  HostKeyAlias ${t.envId}`,
    `  UserKnownHostsFile ${sshConfigPath(knownHosts)}`,
    '  StrictHostKeyChecking yes',
    '  CheckHostIP no',
    '',
  ].join('\n');
}

/** The whole managed block for a context, markers included, ending with a newline. */
export function renderBlock(context: string, entries: readonly HostEntry[], knownHosts: string): string {
  const { begin, end } = markers(context);
  const head = [begin, '# Written by `remotegpu config-ssh`: run it again after creating or deleting environments;', '# edits inside this block are lost then.', ''];
  return [...head, ...entries.map((e) => renderEntry(e, knownHosts)), `${end}\n`].join('\n');
}

/** Where a context's block is in a config file: [start, end) byte offsets, end after its last newline. */
function findBlock(text: string, context: string): { start: number; end: number } | null {
  const { begin, end } = markers(context);
  const start = lineAt(text, begin, 0);
  if (start < 0) return null;
  const last = lineAt(text, end, start);
  if (last < 0) throw new CliError(`the remotegpu block for context ${context} has its BEGIN line but no END line (\`${end}\`): fix the file by hand`);
  const newline = text.indexOf('\n', last);
  return { start, end: newline < 0 ? text.length : newline + 1 };
}

/** The offset of the first line from `from` on that is exactly `line` (CR LF endings too), or -1. */
function lineAt(text: string, line: string, from: number): number {
  for (let i = text.indexOf(line, from); i >= 0; i = text.indexOf(line, i + 1)) {
    const after = text.slice(i + line.length, i + line.length + 2);
    if ((i === 0 || text[i - 1] === '\n') && (after === '' || after[0] === '\n' || after === '\r\n')) return i;
  }
  return -1;
}

/**
 * `text` with the context's block replaced by `block`, or `block` added at the end (after a blank
 * line) when there is none yet. Everything outside the block is kept byte for byte.
 */
export function replaceBlock(text: string, context: string, block: string): string {
  const found = findBlock(text, context);
  if (found) return text.slice(0, found.start) + block + text.slice(found.end);
  if (text === '') return block;
  return `${text}${text.endsWith('\n') ? '' : '\n'}\n${block}`;
}

/** The context's current block in `text` ('' when none). */
export function currentBlock(text: string, context: string): string {
  const found = findBlock(text, context);
  return found ? text.slice(found.start, found.end) : '';
}

/** The `Host` entries of a block, keyed by their `Host` line, with the option lines under each. */
export function blockHosts(block: string): Map<string, string> {
  const hosts = new Map<string, string>();
  let current: string | null = null;
  for (const raw of block.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('Host ')) hosts.set((current = line.slice(5).trim()), '');
    else if (current !== null && line && !line.startsWith('#')) hosts.set(current, `${hosts.get(current)}${line}\n`);
  }
  return hosts;
}

/** What rewriting a block changes: `Host` lines added, removed, and those whose options changed. */
export function blockChanges(before: string, after: string): { added: string[]; removed: string[]; changed: string[] } {
  const old = blockHosts(before);
  const now = blockHosts(after);
  return {
    added: [...now.keys()].filter((h) => !old.has(h)),
    removed: [...old.keys()].filter((h) => !now.has(h)),
    changed: [...now].filter(([h, body]) => old.has(h) && old.get(h) !== body).map(([h]) => h),
  };
}
