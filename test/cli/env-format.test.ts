import { describe, expect, it } from 'vitest';
import type { Environment } from '../../cli/cli.js';
import { environmentColumns, environmentFields, gpuText } from '../../cli/env-format.js';
import { renderTable } from '../../cli/output.js';

// What `remotegpu env ls` and `env get` show people, from the API's environment objects.

const NOW = Date.parse('2026-11-25T21:00:00Z');
const GIB = 2 ** 30;

function environment(overrides: Partial<Environment> = {}): Environment {
  return {
    env_id: 'env-v796wfumep',
    name: 'PyTorch Training',
    description: '',
    workspace_id: null,
    status: 'running',
    status_reason: '',
    image: 'devbox:1',
    cpu: 4,
    memory: 16 * GIB,
    gpu: 2,
    gpu_model: 'A40',
    storage: 100 * GIB,
    storage_used: 3 * GIB,
    rootfs_used: null,
    usage_measured_at: null,
    host_id: 'host-12ipdemt7n',
    ssh_port: 34000,
    jupyter_port: 34100,
    access_info: {
      ssh: 'ssh root@203.0.113.7 -p 34000',
      ssh_user: 'root',
      ssh_host: '203.0.113.7',
      ssh_host_keys: [{ type: 'ssh-ed25519', key: 'AAAAC3Nza', fingerprint: 'SHA256:8mRr3Bc4Uk0c0pE1zCJ3tqQ2q1oBNdAn1u7pNQm0Zq8' }],
      jupyter: 'http://203.0.113.7:34100/?token=abc',
    },
    created_at: '2026-11-25T20:31:41.989Z',
    started_at: '2026-11-25T20:31:43.000Z',
    stopped_at: null,
    ...overrides,
  };
}

describe('env ls table', () => {
  it('has the columns, aligned, with n×model GPUs, binary sizes, host:port and age', () => {
    const rows = [
      environment(),
      environment({ env_id: 'env-0y8o4cz8p0', name: 'waiting', status: 'pending', gpu: 8, gpu_model: null, cpu: 16, memory: 512 * 2 ** 20, storage: 1.5 * 2 ** 40, host_id: null, ssh_port: null, jupyter_port: null, access_info: null, created_at: '2026-11-23T21:00:00Z' }),
    ];
    expect(renderTable(rows, environmentColumns(NOW))).toBe(
      [
        'NAME              ID              STATUS   GPU    CPU   MEMORY  STORAGE  SSH                AGE',
        'PyTorch Training  env-v796wfumep  running  2×A40    4   16 GiB  100 GiB  203.0.113.7:34000  28m',
        'waiting           env-0y8o4cz8p0  pending  8       16  512 MiB  1.5 TiB  -                  2d',
        '',
      ].join('\n'),
    );
  });

  it('shows a bare count without a model, and 0 GPUs as 0', () => {
    expect(gpuText({ gpu: 1, gpu_model: null })).toBe('1');
    expect(gpuText({ gpu: 0, gpu_model: 'A40' })).toBe('0');
  });

  it('keeps a name with a newline on one line', () => {
    expect(renderTable([environment({ name: 'a\nb' })], environmentColumns(NOW)).split('\n')[1]).toMatch(/^a b /);
  });
});

describe('env get fields', () => {
  it('shows the ssh command, host key fingerprints, jupyter and usage', () => {
    const text = environmentFields(environment(), NOW);
    expect(text).toContain('ssh:         ssh root@203.0.113.7 -p 34000\n');
    expect(text).toContain('ssh address: 203.0.113.7:34000\n');
    expect(text).toContain('host key:    SHA256:8mRr3Bc4Uk0c0pE1zCJ3tqQ2q1oBNdAn1u7pNQm0Zq8 (ssh-ed25519)\n');
    expect(text).toMatch(/jupyter: +http:\/\/203\.0\.113\.7:34100\/\?token=abc/);
    expect(text).toMatch(/storage: +100 GiB \(3 GiB used\)/);
    expect(text).toMatch(/created: +2026-11-25T20:31:41.989Z \(28m ago\)/);
    expect(text).not.toMatch(/^reason:/m);
  });

  it('shows why it is pending, and dashes before it is placed', () => {
    const text = environmentFields(environment({ status: 'pending', status_reason: 'waiting for capacity', access_info: null, ssh_port: null, host_id: null }), NOW);
    expect(text).toMatch(/^reason: +waiting for capacity$/m);
    expect(text).toMatch(/^ssh: +-$/m);
    expect(text).toMatch(/^jupyter: +-$/m);
  });
});
