import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Environment } from '../../cli/cli.js';
import { knownHostsLines, knownHostsPath, mergeKnownHosts, writeKnownHosts } from '../../cli/ssh/known-hosts.js';
import { notReady, sshArgs, sshConfigPath, sshTarget } from '../../cli/ssh/target.js';

// What `remotegpu ssh` runs: the known_hosts file it keeps (keyed by environment id), the refusal
// when an environment cannot be reached yet, and ssh's arguments.

const ED = { type: 'ssh-ed25519', key: 'AAAAC3NzaC1lZDI1NTE5AAAAIIVDqcfXoCKv8lYABJoEE+qFu343pqoRAuD0ZAl86DCo' };
const ECDSA = { type: 'ecdsa-sha2-nistp256', key: 'AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV9U2cOHBjQi1ZlVXNmRA=' };
const FP = { fingerprint: 'SHA256:x' };

function environment(over: Partial<Environment> = {}): Environment {
  return {
    env_id: 'env-abc123',
    name: 'dev',
    status: 'running',
    ssh_port: 20001,
    access_info: { ssh: 'ssh root@127.0.0.1 -p 20001', ssh_host: '127.0.0.1', ssh_user: 'root', ssh_host_keys: [{ ...ED, ...FP }], jupyter: null },
    ...over,
  } as Environment;
}

describe('known_hosts', () => {
  it('lives next to the config', () => {
    expect(knownHostsPath({ HOME: '/home/a' })).toBe('/home/a/.config/remotegpu/known_hosts');
    expect(knownHostsPath({ REMOTEGPU_CONFIG: '/etc/x/config.json' })).toBe('/etc/x/known_hosts');
  });

  it("replaces one environment's lines and keeps the others in order", () => {
    const text = `env-a ${ED.type} OLD\nenv-b ${ED.type} B\n\nenv-a ${ECDSA.type} OLD2\n`;
    expect(mergeKnownHosts(text, new Map([['env-a', [ED, ECDSA]]]))).toBe(`env-b ${ED.type} B\nenv-a ${ED.type} ${ED.key}\nenv-a ${ECDSA.type} ${ECDSA.key}\n`);
    expect(mergeKnownHosts('', new Map([['env-a', []]]))).toBe('');
  });

  it('leaves out keys that could carry more than a key (markers, spaces, newlines) and bad ids', () => {
    expect(knownHostsLines('env-a', [{ type: '@cert-authority', key: 'AAAA' }, { type: 'ssh-ed25519', key: 'AAAA\n* ssh-ed25519 BBBB' }, ED])).toEqual([`env-a ${ED.type} ${ED.key}`]);
    expect(knownHostsLines('* evil', [ED])).toEqual([]);
  });

  it('writes the file 0600, and the real ssh-keygen finds the key under the env id', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-kh-'));
    const file = path.join(dir, 'remotegpu', 'known_hosts');
    writeKnownHosts(file, new Map([['env-a', [ED]]]));
    writeKnownHosts(file, new Map([['env-b', [ECDSA]]]));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(2);
    expect(execFileSync('ssh-keygen', ['-F', 'env-b', '-f', file], { encoding: 'utf8' })).toContain(ECDSA.key);
    expect(execFileSync('ssh-keygen', ['-F', 'env-a', '-f', file], { encoding: 'utf8' })).toContain(ED.key);
  });
});

describe('notReady', () => {
  it('says what to do when the environment is not running, has no address or no keys yet', () => {
    expect(notReady(environment({ status: 'stopped' }), 'dev')).toBe('env dev is stopped: run `remotegpu env start dev`');
    expect(notReady(environment({ status: 'creating', access_info: null, ssh_port: null }), 'dev')).toMatch(/^env dev is creating, not running/);
    expect(notReady(environment({ access_info: null }), 'dev')).toMatch(/no SSH address yet/);
    const keyless = environment();
    expect(notReady({ ...keyless, access_info: { ...keyless.access_info!, ssh_host_keys: [] } }, 'dev')).toMatch(/not reported its SSH host keys yet/);
    expect(notReady(environment(), 'dev')).toBeNull();
  });

  it('refuses an address or user that ssh would read as an option', () => {
    const e = environment();
    expect(sshTarget({ ...e, access_info: { ...e.access_info!, ssh_host: '-oProxyCommand=x' } })).toBeNull();
    expect(sshTarget({ ...e, access_info: { ...e.access_info!, ssh_user: 'root\nProxyCommand x' } })).toBeNull();
  });

  it('refuses a port that is not a port: it goes onto config-ssh\'s `Port` line as it is', () => {
    const e = environment();
    // What a controller (or anything between) could answer instead of a number: a directive on a line of its own.
    expect(sshTarget({ ...e, ssh_port: '22\n  ProxyCommand touch /tmp/pwned' as unknown as number })).toBeNull();
    for (const port of [0, 65536, 22.5, -1, '2222']) expect(sshTarget({ ...e, ssh_port: port as number })).toBeNull();
    expect(sshTarget({ ...e, ssh_port: 65535 })?.port).toBe(65535);
  });
});

describe('sshArgs', () => {
  const target = sshTarget(environment())!;
  it('checks the host key strictly under the env id, against our file, never by address', () => {
    expect(sshArgs(target, { knownHosts: '/k/known_hosts', tty: true, command: [], options: [] })).toEqual([
      '-t', '-o', 'HostKeyAlias=env-abc123', '-o', 'UserKnownHostsFile=/k/known_hosts', '-o', 'StrictHostKeyChecking=yes', '-o', 'CheckHostIP=no', '-p', '20001', 'root@127.0.0.1',
    ]);
  });

  it('passes the command, -o options (after ours) and -i on, with no -t for a command', () => {
    const args = sshArgs(target, { knownHosts: '/k', tty: true, command: ['ls', '/dev/nvidia*'], options: ['ConnectTimeout=5'], identity: '/id' });
    expect(args[0]).toBe('-o');
    expect(args.slice(8)).toEqual(['-o', 'ConnectTimeout=5', '-i', '/id', '-p', '20001', 'root@127.0.0.1', 'ls', '/dev/nvidia*']);
  });

  it('quotes a path with spaces and doubles % (ssh expands %-tokens there)', () => {
    expect(sshConfigPath('/home/a b/k')).toBe('"/home/a b/k"');
    expect(sshConfigPath('/h/100%/k')).toBe('/h/100%%/k');
  });

  it('gives ssh a known_hosts path it reads back as written (ssh -G)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rgpu dir %x '));
    const known = path.join(dir, 'known_hosts');
    writeFileSync(known, '');
    const args = sshArgs(target, { knownHosts: known, tty: false, command: [], options: [] });
    const resolved = execFileSync('ssh', ['-G', '-T', '-F', '/dev/null', ...args], { encoding: 'utf8' });
    expect(resolved).toContain(`userknownhostsfile ${known}`);
    expect(resolved).toMatch(/^hostkeyalias env-abc123$/m);
  });
});
