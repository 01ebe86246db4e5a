import { describe, expect, it } from 'vitest';
import { hostForPort } from '../../../common/format.js';
import { EnvironmentAccess } from '../../../controller/environments/access-info.js';

// How users reach an environment: an IPv6 host address goes in brackets where a port follows it
// (the Jupyter URL, an agent's advertised HOST:PORT), never in the ssh command's user@host.

const access = new EnvironmentAccess('http://{address}:{port}/?token={token}');
const env = { ssh_port: 20001, jupyter_port: 25001, jupyter_token: 'tok', ssh_host_keys: [] };
/** An ed25519 public key made with ssh-keygen, and the fingerprint `ssh-keygen -lf` printed for it. */
const ED25519 = 'AAAAC3NzaC1lZDI1NTE5AAAAIPnmhCvB0R4JZT4a+Zm4qnfg57IWMv8zd19nBNgKHGIa';
const ED25519_FINGERPRINT = 'SHA256:N88xZkXCJsirC0SzLLGP4RByTQV8A4qzTfXH3N6omRY';

describe('access info', () => {
  it('words the ssh command and the Jupyter URL for an IPv4 address', () => {
    expect(access.of({ ...env, public_address: '10.0.0.5' })).toEqual({
      ssh: 'ssh root@10.0.0.5 -p 20001',
      ssh_user: 'root',
      ssh_host: '10.0.0.5',
      ssh_host_keys: [],
      jupyter: 'http://10.0.0.5:25001/?token=tok',
    });
  });

  it('brackets an IPv6 address in the Jupyter URL only', () => {
    expect(access.of({ ...env, public_address: '2001:db8::7' })).toMatchObject({ ssh: 'ssh root@2001:db8::7 -p 20001', ssh_host: '2001:db8::7', jupyter: 'http://[2001:db8::7]:25001/?token=tok' });
  });

  it('offers the stored host keys that are valid, each with its SHA256 fingerprint', () => {
    const stored = [{ type: 'ssh-ed25519', key: ED25519 }, { type: 'ssh-rsa', key: ED25519 }, { type: 'ssh-ed25519' }, 'junk'];
    expect(access.of({ ...env, public_address: '10.0.0.5', ssh_host_keys: stored })?.ssh_host_keys).toEqual([
      { type: 'ssh-ed25519', key: ED25519, fingerprint: ED25519_FINGERPRINT },
    ]);
  });

  it('is null until the environment is placed', () => {
    expect(access.of({ ...env, public_address: null })).toBeNull();
  });
});

describe('hostForPort', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['gpu-7.example', 'gpu-7.example'],
    ['::1', '[::1]'],
    ['[::1]', '[::1]'],
  ])('%s → %s', (host, shown) => {
    expect(hostForPort(host)).toBe(shown);
  });
});
