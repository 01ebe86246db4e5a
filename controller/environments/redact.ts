// Agent and Docker error texts name host paths (a dataset's directory, the agent's run and state
// directories, its volumes): users see such a text with those paths replaced, admins the full one
// (`status_detail`). Pure: the caller supplies what it knows of the environment.

/** What an environment's users may see of paths, and what its host-side paths mean to them. */
export interface RedactionContext {
  /** Datasets mounted in the environment: a host path at or under `hostPath` becomes `<dataset NAME>`. */
  readonly datasets: readonly { readonly name: string; readonly hostPath: string }[];
  /** Paths inside the container the user chose or knows (mount paths, the data path): kept where they appear exactly. */
  readonly containerPaths: readonly string[];
}

// An absolute path standing on its own, not the rest of a word ("a/b"); one starting "//" is the
// rest of a URL ("https://x/y") and stays. Ends at whitespace, a quote or bracket, or ",;:" (a
// bind spec "src:dst:ro" holds two paths).
const ABSOLUTE_PATH = /(?<![\w.@~/-])\/[^\s"'`,;:()[\]{}<>]+/g;

/** The placeholder for a host path the user has no business seeing. */
export const HOST_PATH = '<host path>';

/**
 * `text` with its absolute paths replaced: a path at or under a mounted dataset's host path by
 * `<dataset NAME…>` (with the rest below it), any other by `<host path>` unless it is exactly one
 * of the environment's container paths. A "." ending a path stays (it ends a sentence). Dataset
 * host paths are found first as plain text (longest first, at a path boundary), so one holding
 * spaces or brackets is replaced whole; the path pattern then covers the text between them.
 */
export function redactHostPaths(text: string, context: RedactionContext): string {
  const datasets = [...context.datasets].sort((a, b) => b.hostPath.length - a.hostPath.length);
  const found = findDatasetPaths(text, datasets);
  let out = '';
  let at = 0;
  for (const f of found) {
    out += redactPaths(text.slice(at, f.start), context, datasets) + f.replacement;
    at = f.end;
  }
  return out + redactPaths(text.slice(at), context, datasets);
}

/** The path pattern's pass over text holding no dataset host path found as plain text. */
function redactPaths(text: string, context: RedactionContext, datasets: RedactionContext['datasets']): string {
  return text.replace(ABSOLUTE_PATH, (match) => {
    if (match.startsWith('//')) return match;
    const trail = /\.+$/.exec(match)?.[0] ?? '';
    const path = trail ? match.slice(0, -trail.length) : match;
    if (path === '' || path === '/') return match;
    // Dataset host paths first: a mount path that equals one must not unmask it.
    const dataset = datasets.find((d) => isAtOrUnder(path, d.hostPath));
    if (dataset) return `<dataset ${dataset.name}${path.slice(trimSlash(dataset.hostPath).length)}>${trail}`;
    if (context.containerPaths.some((c) => trimSlash(c) === path)) return match;
    return `${HOST_PATH}${trail}`;
  });
}

const PATH_CHAR_BEFORE = /[\w.@~/-]/;
const PATH_REST = /^[^\s"'`,;:()[\]{}<>]*/;

/**
 * Where the datasets' host paths (longest first) stand in `text` as plain text at a path
 * boundary: not right after a path character, and followed by the end of the path, "/" (a path
 * below it, kept as `<dataset NAME/rest>`) or only the dots ending a sentence. In text order,
 * never overlapping.
 */
function findDatasetPaths(text: string, datasets: RedactionContext['datasets']) {
  const found: { start: number; end: number; replacement: string }[] = [];
  for (const d of datasets) {
    const root = trimSlash(d.hostPath);
    if (root === '') continue;
    for (let start = text.indexOf(root); start !== -1; start = text.indexOf(root, start + 1)) {
      if (start > 0 && PATH_CHAR_BEFORE.test(text[start - 1]!)) continue;
      const matched = PATH_REST.exec(text.slice(start + root.length))![0];
      const rest = matched.replace(/\.+$/, '');
      if (rest !== '' && !rest.startsWith('/')) continue;
      const end = start + root.length + rest.length;
      if (found.some((f) => start < f.end && f.start < end)) continue;
      found.push({ start, end, replacement: `<dataset ${d.name}${rest}>` });
    }
  }
  return found.sort((a, b) => a.start - b.start);
}

function isAtOrUnder(path: string, root: string): boolean {
  const r = trimSlash(root);
  if (r === '') return false;
  return path === r || path.startsWith(`${r}/`);
}

function trimSlash(path: string): string {
  return path.replace(/\/+$/, '');
}

/**
 * The two texts of a status reason from an agent: what users see (`reason`, host paths replaced)
 * and what admins see (`detail`, the full text; '' when it equals the reason).
 */
export function agentReason(text: string, context: RedactionContext): { reason: string; detail: string } {
  const reason = redactHostPaths(text, context);
  return { reason, detail: reason === text ? '' : text };
}
