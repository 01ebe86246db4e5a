import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { blockChanges, currentBlock, hostEntries, renderBlock, replaceBlock, slug } from '../../cli/ssh/ssh-config.js';
import type { SshTarget } from '../../cli/ssh/target.js';

// The ~/.ssh/config block `remotegpu config-ssh` keeps: slugs, one block per context, everything
// outside it kept byte for byte, and what the real ssh makes of the entries (`ssh -G`).

const target = (envId: string, name: string, port = 20001): SshTarget => ({
  envId,
  name,
  user: 'root',
  host: '127.0.0.1',
  port,
  keys: [{ type: 'ssh-ed25519', key: 'AAAAC3NzaC1lZDI1NTE5AAAAIIVDqcfXoCKv8lYABJoEE+qFu343pqoRAuD0ZAl86DCo' }],
});
const KNOWN = '/home/a/.config/remotegpu/known_hosts';

describe('slug', () => {
  it.each([
    ['dev', 'dev'],
    ['PyTorch Training', 'pytorch-training'],
    ['  --Bert_large (v2)!  ', 'bert-large-v2'],
    ['a..b', 'a-b'],
    ['模型', ''],
    ['x-y-1', 'x-y-1'],
  ])('%j → %j', (name, want) => expect(slug(name)).toBe(want));
});

describe('hostEntries', () => {
  it('names each environment by slug and id, and only by id where slugs are shared', () => {
    const { entries, shared } = hostEntries([target('env-a', 'Dev'), target('env-b', 'dev'), target('env-c', 'Train 1'), target('env-d', '模型')]);
    expect(entries.map((e) => e.names)).toEqual([['env-a.remotegpu'], ['env-b.remotegpu'], ['train-1.remotegpu', 'env-c.remotegpu'], ['env-d.remotegpu']]);
    expect(shared).toEqual(['dev']);
  });

  it("never gives a name that is another environment's id alias", () => {
    const { entries, shared } = hostEntries([target('env-a', 'env-b'), target('env-b', 'x')]);
    expect(entries.map((e) => e.names)).toEqual([['env-a.remotegpu'], ['x.remotegpu', 'env-b.remotegpu']]);
    expect(shared).toEqual(['env-b']);
  });
});

describe('replaceBlock', () => {
  const block = (ctx: string, ...targets: SshTarget[]) => renderBlock(ctx, hostEntries(targets).entries, KNOWN);
  const user = '# mine\r\nHost work\n  HostName work.example.com\n\tUser me   \n\nInclude ~/.ssh/other\n';

  it('adds the block after the user\'s lines, keeping them byte for byte, and replaces it in place', () => {
    const first = replaceBlock(user, 'local', block('local', target('env-a', 'dev')));
    expect(first.startsWith(`${user}\n# ----- BEGIN remotegpu (context local) -----\n`)).toBe(true);
    const more = `${first}Host after\n  User x`; // no newline at the end: kept as is
    const second = replaceBlock(more, 'local', block('local', target('env-b', 'train', 20002)));
    expect(second).toBe(`${user}\n${block('local', target('env-b', 'train', 20002))}Host after\n  User x`);
    expect(second).not.toContain('env-a');
  });

  it('keeps one block per context and leaves the other context\'s alone', () => {
    let text = replaceBlock('', 'a', block('a', target('env-a', 'one')));
    text = replaceBlock(text, 'b', block('b', target('env-b', 'two')));
    text = replaceBlock(text, 'a', block('a'));
    expect(currentBlock(text, 'b')).toBe(block('b', target('env-b', 'two')));
    expect(currentBlock(text, 'a')).toBe(block('a'));
    expect(text).not.toContain('env-a');
  });

  it('appends to a file without a final newline after a blank line', () => {
    expect(replaceBlock('Host x', 'c', 'B\n')).toBe('Host x\n\nB\n');
  });

  it('refuses a block with a BEGIN line and no END line', () => {
    const broken = '# ----- BEGIN remotegpu (context local) -----\nHost a.remotegpu\n';
    expect(() => replaceBlock(broken, 'local', block('local'))).toThrow(/no END line/);
  });

  it('does not take a marker inside another line for the block', () => {
    const text = '# see "# ----- BEGIN remotegpu (context local) -----" below\n';
    expect(replaceBlock(text, 'local', 'B\n')).toBe(`${text}\nB\n`);
  });
});

describe('blockChanges', () => {
  it('reports added, removed and changed Host entries', () => {
    const before = renderBlock('c', hostEntries([target('env-a', 'a'), target('env-b', 'b')]).entries, KNOWN);
    const after = renderBlock('c', hostEntries([target('env-b', 'b', 20009), target('env-c', 'c')]).entries, KNOWN);
    expect(blockChanges(before, after)).toEqual({ added: ['c.remotegpu env-c.remotegpu'], removed: ['a.remotegpu env-a.remotegpu'], changed: ['b.remotegpu env-b.remotegpu'] });
    expect(blockChanges(after, after)).toEqual({ added: [], removed: [], changed: [] });
  });
});

describe('the block as the real ssh reads it (ssh -G)', () => {
  it('resolves both names to the address, port, user, alias and strict checking against our file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-sshcfg-'));
    const known = path.join(dir, 'my config', 'known_hosts');
    const file = path.join(dir, 'config');
    writeFileSync(file, replaceBlock('Host *\n  ServerAliveInterval 30\n', 'local', renderBlock('local', hostEntries([target('env-a1', 'Dev Box', 20042)]).entries, known)));
    for (const name of ['dev-box.remotegpu', 'env-a1.remotegpu']) {
      const resolved = execFileSync('ssh', ['-G', '-T', '-F', file, name], { encoding: 'utf8' });
      expect(resolved).toMatch(/^hostname 127\.0\.0\.1$/m);
      expect(resolved).toMatch(/^port 20042$/m);
      expect(resolved).toMatch(/^user root$/m);
      expect(resolved).toMatch(/^hostkeyalias env-a1$/m);
      expect(resolved).toMatch(/^stricthostkeychecking true$/m);
      expect(resolved).toMatch(/^checkhostip no$/m);
      expect(resolved).toMatch(/^serveraliveinterval 30$/m);
      expect(resolved).toContain(`userknownhostsfile ${known}`);
    }
  });
});
