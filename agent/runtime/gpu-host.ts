import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTROL_NODES, parseCdiKind } from './gpu.js';

/** Which of nvidiactl, nvidia-uvm, nvidia-uvm-tools exist as character devices in `deviceDir`. */
export async function findControlNodes(deviceDir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of CONTROL_NODES) {
    const info = await stat(join(deviceDir, name)).catch(() => undefined);
    if (info?.isCharacterDevice()) found.push(name);
  }
  return found;
}

/** The CDI kinds declared by the spec files (*.json, *.yaml, *.yml) in `dirs`; missing dirs are skipped. */
export async function readCdiKinds(dirs: readonly string[]): Promise<string[]> {
  const kinds = new Set<string>();
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!/\.(json|ya?ml)$/.test(name)) continue;
      const text = await readFile(join(dir, name), 'utf8').catch(() => '');
      const kind = parseCdiKind(text);
      if (kind) kinds.add(kind);
    }
  }
  return [...kinds];
}
