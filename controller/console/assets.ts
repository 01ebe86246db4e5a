import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';

/**
 * The console's static files, all served from the package (nothing is fetched from the internet
 * at run time): the console's own CSS and scripts, and the vendored xterm.js and Swagger UI files
 * read from node_modules. Each prefix maps to one folder; a path leaving it is a 404.
 */
const require = createRequire(import.meta.url);
const packageDir = (name: string) => dirname(require.resolve(`${name}/package.json`));

const ROOTS: Record<string, () => string> = {
  console: () => join(dirname(fileURLToPath(import.meta.url)), 'assets'),
  xterm: () => packageDir('@xterm/xterm'),
  'xterm-fit': () => packageDir('@xterm/addon-fit'),
  'swagger-ui': () => packageDir('swagger-ui-dist'),
};

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

const cache = new Map<string, Buffer>();

/** `path` percent-decoded, or undefined when it is not valid percent-encoding (`%E0%A4%A`). */
function decoded(path: string): string | undefined {
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
}

/** GET /assets/{console|xterm|xterm-fit|swagger-ui}/<path>. */
export function assetRoutes(): Hono {
  const app = new Hono();
  app.get('/assets/:root/*', async (c) => {
    const name = c.req.param('root');
    const rootOf = Object.hasOwn(ROOTS, name) ? ROOTS[name] : undefined;
    const rest = decoded(c.req.path.split('/').slice(3).join('/'));
    const type = rest === undefined ? undefined : TYPES[rest.slice(rest.lastIndexOf('.'))];
    if (!rootOf || rest === undefined || !type || rest.includes('\0')) return c.notFound();
    const root = rootOf();
    const file = normalize(join(root, rest));
    if (!file.startsWith(root + sep)) return c.notFound();
    let body = cache.get(file);
    if (!body) {
      body = await readFile(file).catch(() => undefined);
      if (!body) return c.notFound();
      cache.set(file, body);
    }
    return c.body(new Uint8Array(body), 200, { 'content-type': type, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
  });
  return app;
}
