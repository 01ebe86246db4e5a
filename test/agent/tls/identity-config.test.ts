import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../common/config.js';
import { loadAgentConfig } from '../../../agent/config.js';
import { identityAtStart, saveIdentity } from '../../../agent/identity.js';

// The join token's CA pin, the gRPC mode, and what the agent does with the identity file it finds:
// configuration errors are one line and exit code 2; `remotegpu-agent reset` is the only way to
// register anew.

const run = promisify(execFile);
const HEX = 'ab'.repeat(32);
const SECRET = 'jt_abc123.0123456789abcdefXYZ';
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'rgpu-identity-'));
  dirs.push(d);
  return d;
}

function configError(env: Record<string, string>): string {
  try {
    loadAgentConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message.split('\n')).toHaveLength(1);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('agent config: join token, CA pin, gRPC mode', () => {
  it('splits the join token at the last @sha256: into the secret and the pin', () => {
    expect(loadAgentConfig({ REMOTEGPU_JOIN_TOKEN: `${SECRET}@sha256:${HEX}` })).toMatchObject({ joinToken: SECRET, caPin: `sha256:${HEX}`, grpcInsecure: false });
    expect(loadAgentConfig({ REMOTEGPU_JOIN_TOKEN: `a@b-0123456789abcdef@sha256:${HEX.toUpperCase()}` })).toMatchObject({ joinToken: 'a@b-0123456789abcdef', caPin: `sha256:${HEX}` });
    expect(loadAgentConfig({ REMOTEGPU_JOIN_TOKEN: 'bootstrap-secret-0123456789', REMOTEGPU_CA_HASH: `sha256:${HEX}` })).toMatchObject({ joinToken: 'bootstrap-secret-0123456789', caPin: `sha256:${HEX}` });
    expect(loadAgentConfig({ REMOTEGPU_JOIN_TOKEN: `${SECRET}@sha256:${HEX}`, REMOTEGPU_CA_HASH: `sha256:${HEX}` }).caPin).toBe(`sha256:${HEX}`);
    expect(loadAgentConfig({ REMOTEGPU_JOIN_TOKEN: SECRET })).toMatchObject({ joinToken: SECRET, caPin: undefined });
    expect(loadAgentConfig({})).toMatchObject({ joinToken: undefined, caPin: undefined, grpcInsecure: false });
    expect(loadAgentConfig({ REMOTEGPU_GRPC_INSECURE: '1' }).grpcInsecure).toBe(true);
    expect(loadAgentConfig({ REMOTEGPU_GRPC_INSECURE: '0' }).grpcInsecure).toBe(false);
  });

  it('refuses a malformed pin in one line, never echoing the token', () => {
    const bad = configError({ REMOTEGPU_JOIN_TOKEN: `${SECRET}@sha256:abc` });
    expect(bad).toBe('invalid configuration: REMOTEGPU_JOIN_TOKEN=(hidden): the CA pin must be sha256:<64 hex digits> (the hash the controller prints with the join token)');
    expect(configError({ REMOTEGPU_JOIN_TOKEN: `short@sha256:${HEX}` })).toMatch(/REMOTEGPU_JOIN_TOKEN=\(hidden\): expected a secret of at least 16 characters/);
    expect(configError({ REMOTEGPU_CA_HASH: 'md5:1234' })).toMatch(/^invalid configuration: REMOTEGPU_CA_HASH="md5:1234": the CA pin must be sha256:<64 hex digits>/);
    expect(configError({ REMOTEGPU_JOIN_TOKEN: `${SECRET}@sha256:${HEX}`, REMOTEGPU_CA_HASH: `sha256:${'cd'.repeat(32)}` })).toMatch(/REMOTEGPU_CA_HASH=.*differs from the CA pin in REMOTEGPU_JOIN_TOKEN/);
    expect(configError({ REMOTEGPU_GRPC_INSECURE: 'yes' })).toMatch(/REMOTEGPU_GRPC_INSECURE="yes"/);
    expect(bad).not.toContain(SECRET);
  });
});

describe('identity at start', () => {
  const tls = (dataDir: string, more: object = {}) => ({ dataDir, joinToken: SECRET, caPin: `sha256:${HEX}`, grpcInsecure: false, ...more });

  it('registers when the data directory holds no identity, given a token (and a pin unless insecure)', async () => {
    const dir = tempDir();
    expect(await identityAtStart(tls(dir))).toBeUndefined();
    expect(await identityAtStart(tls(dir, { caPin: undefined, grpcInsecure: true }))).toBeUndefined();
    await expect(identityAtStart(tls(dir, { caPin: undefined }))).rejects.toThrow(/REMOTEGPU_JOIN_TOKEN carries no CA pin.*<secret>@sha256:<64 hex>.*REMOTEGPU_CA_HASH/);
    await expect(identityAtStart(tls(dir, { joinToken: undefined }))).rejects.toThrow(/this host is not registered yet \(no .*agent-identity.json\) and REMOTEGPU_JOIN_TOKEN is not set/);
  });

  it('keeps a version-1 file but refuses it under TLS, telling to reset; uses it in insecure mode', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'agent-identity.json');
    writeFileSync(file, JSON.stringify({ hostId: 'host-old1', credential: 'old-credential-0123456789', controller: '10.0.0.5:9090' }));
    const err = await identityAtStart(tls(dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/\(host host-old1\) was written by an older agent.*cannot be used with mutual TLS; run `remotegpu-agent reset`.*DELETE \/api\/v1\/admin\/hosts\/host-old1/);
    expect(existsSync(file)).toBe(true);
    expect(await identityAtStart(tls(dir, { grpcInsecure: true }))).toMatchObject({ version: 2, hostId: 'host-old1', credential: 'old-credential-0123456789', certPem: '' });
  });

  it('refuses an identity of the other gRPC mode and an unreadable file', async () => {
    const dir = tempDir();
    await saveIdentity(dir, { version: 2, hostId: 'host-p1', controller: 'c:1', caPem: '', keyPem: '', certPem: '', credential: 'cred-0123456789abcdef' });
    await expect(identityAtStart(tls(dir))).rejects.toThrow(/registered over plaintext gRPC and has no certificate/);
    await saveIdentity(dir, { version: 2, hostId: 'host-t1', controller: 'c:1', caPem: 'CA', keyPem: 'KEY', certPem: 'CERT' });
    await expect(identityAtStart(tls(dir, { grpcInsecure: true }))).rejects.toThrow(/registered with mutual TLS and has no bearer credential/);
    expect(await identityAtStart(tls(dir, { joinToken: undefined, caPin: undefined }))).toMatchObject({ hostId: 'host-t1' });
    writeFileSync(path.join(dir, 'agent-identity.json'), '{"hostId": "host-t1", "ver');
    await expect(identityAtStart(tls(dir))).rejects.toThrow(/cannot use .*agent-identity.json: not JSON/);
  });
});

describe('the remotegpu-agent program', () => {
  const agentCli = (args: string[], env: Record<string, string>) =>
    run(process.execPath, ['--import', 'tsx', 'agent/main.ts', ...args], { env: { PATH: process.env.PATH, REMOTEGPU_NAMESPACE: `identity-config-${process.pid}`, ...env }, timeout: 30_000 }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('reset prints what it removes, deletes the identity file and says how to join again', async () => {
    const dir = tempDir();
    await saveIdentity(dir, { version: 2, hostId: 'host-r1', controller: '10.0.0.5:9090', caPem: 'CA', keyPem: 'KEY', certPem: 'CERT' });
    const res = await agentCli(['reset'], { REMOTEGPU_DATA_DIR: dir, REMOTEGPU_JOIN_TOKEN: 'malformed@sha256:zz' });
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`removing ${path.join(dir, 'agent-identity.json')}: host host-r1, registered with controller 10.0.0.5:9090`);
    expect(res.stdout).toContain('containers of this host were not touched');
    expect(res.stdout).toContain('DELETE /api/v1/admin/hosts/host-r1');
    expect(res.stdout).toContain('new join token');
    expect(existsSync(path.join(dir, 'agent-identity.json'))).toBe(false);
    const again = await agentCli(['reset'], { REMOTEGPU_DATA_DIR: dir });
    expect(again).toMatchObject({ code: 0 });
    expect(again.stdout).toMatch(/not registered; nothing to reset/);
    expect((await agentCli(['rest'], { REMOTEGPU_DATA_DIR: dir })).code).toBe(2);
  }, 60_000);

  it('exits 2 with one line when it cannot register over TLS (no pin), warning first in insecure mode', async () => {
    const dir = tempDir();
    const noPin = await agentCli([], { REMOTEGPU_DATA_DIR: dir, REMOTEGPU_JOIN_TOKEN: SECRET });
    expect(noPin.code).toBe(2);
    expect(noPin.stderr.trim().split('\n')).toHaveLength(1);
    expect(noPin.stderr).toMatch(/^remotegpu-agent: REMOTEGPU_JOIN_TOKEN carries no CA pin/);
    const insecure = await agentCli([], { REMOTEGPU_DATA_DIR: dir, REMOTEGPU_GRPC_INSECURE: '1' });
    expect(insecure.code).toBe(2);
    expect(insecure.stdout).toMatch(/plaintext gRPC \(REMOTEGPU_GRPC_INSECURE=1\): anyone on the network can/);
    expect(insecure.stderr).toMatch(/REMOTEGPU_JOIN_TOKEN is not set/);
  }, 60_000);
});
