import { describe, expect, it } from 'vitest';
import { hostForPort } from '../../../common/format.js';
import { EnvironmentAccess } from '../../../controller/environments/access-info.js';

// How users reach an environment: an IPv6 host address goes in brackets where a port follows it
// (the Jupyter URL, an agent's advertised HOST:PORT), never in the ssh command's user@host.

const access = new EnvironmentAccess('http://{address}:{port}/?token={token}');
const env = { ssh_port: 20001, jupyter_port: 25001, jupyter_token: 'tok' };

describe('access info', () => {
  it('words the ssh command and the Jupyter URL for an IPv4 address', () => {
    expect(access.of({ ...env, public_address: '10.0.0.5' })).toEqual({ ssh: 'ssh root@10.0.0.5 -p 20001', jupyter: 'http://10.0.0.5:25001/?token=tok' });
  });

  it('brackets an IPv6 address in the Jupyter URL only', () => {
    expect(access.of({ ...env, public_address: '2001:db8::7' })).toEqual({ ssh: 'ssh root@2001:db8::7 -p 20001', jupyter: 'http://[2001:db8::7]:25001/?token=tok' });
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
