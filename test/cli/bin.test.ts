import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// The installed `remotegpu` is package.json's bin, dist/cli/main.js, built by `npm run build`
// (tsc with tsconfig.build.json). This compiles the package into a temporary directory the same
// way and runs the compiled bin with plain node: no tsx, as after `npm link`.

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

describe('the remotegpu bin as built', () => {
  it('package.json names dist/cli/main.js, and the compiled file runs with node (shebang, ESM imports, --help)', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.bin.remotegpu).toBe('dist/cli/main.js');
    expect(readFileSync(path.join(ROOT, 'cli/main.ts'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const out = mkdtempSync(path.join(tmpdir(), 'rgpu-bin-'));
    execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', path.join(out, 'dist'), '--sourceMap', 'false'], { cwd: ROOT, stdio: 'pipe' });
    // The compiled package resolves its dependencies from a node_modules beside it, as installed.
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(out, 'node_modules'));
    cpSync(path.join(ROOT, 'package.json'), path.join(out, 'package.json'));
    const bin = path.join(out, pkg.bin.remotegpu);
    expect(statSync(bin).isFile()).toBe(true);
    const help = execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: out } });
    expect(help).toContain('Usage: remotegpu');
    expect(help).toContain('login');
    const version = execFileSync(process.execPath, [bin, '--version'], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: out } });
    expect(version.trim()).toBe(pkg.version);
  }, 120_000);
});
