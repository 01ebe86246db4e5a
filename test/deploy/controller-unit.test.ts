import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

// deploy/remotegpu-controller.service: restarted whatever ends it, confined to its data directory,
// configured from an environment file; systemd itself accepts every line (systemd-analyze verify,
// which exits 0 on lines it ignores, so its warnings are checked too).

const run = promisify(execFile);
const UNIT = path.resolve('deploy/remotegpu-controller.service');
const AGENT_UNIT = path.resolve('deploy/remotegpu-agent.service');

/** The unit's settings by section: each key with every value it was given (comments dropped). */
function parseUnit(file: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 1) throw new Error(`not a unit line: ${line}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

async function systemdAnalyze(): Promise<boolean> {
  return run('systemd-analyze', ['--version']).then(
    () => true,
    () => false,
  );
}

describe('deploy/remotegpu-controller.service', () => {
  const unit = parseUnit(UNIT);
  const service = unit.get('Service')!;
  const one = (key: string) => {
    const values = service.get(key);
    expect(values, key).toBeDefined();
    return values![values!.length - 1];
  };

  it('restarts the controller whatever ended it, and never gives up', () => {
    expect(one('Restart')).toBe('always');
    expect(Number.parseFloat(one('RestartSec')!)).toBeGreaterThan(0);
    expect(unit.get('Unit')!.get('StartLimitIntervalSec')).toEqual(['0']);
    expect(unit.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);
  });

  it('runs the built controller as an unprivileged user, configured from /etc/remotegpu/controller.env', () => {
    expect(one('ExecStart')).toMatch(/dist\/controller\/main\.js$/);
    expect(one('EnvironmentFile')).toBe('/etc/remotegpu/controller.env');
    expect(one('User')).not.toBe('root');
    // The data directory is the one path it may write.
    expect(one('StateDirectory')).toBe('remotegpu-controller');
    expect(service.get('Environment')).toContain('REMOTEGPU_DATA_DIR=/var/lib/remotegpu-controller');
    expect(one('ReadWritePaths')).toBe('/var/lib/remotegpu-controller');
  });

  it('is hardened', () => {
    for (const [key, value] of Object.entries({
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectControlGroups: 'yes',
      RestrictSUIDSGID: 'yes',
      RestrictNamespaces: 'yes',
      LockPersonality: 'yes',
      CapabilityBoundingSet: '',
    })) {
      expect(one(key), key).toBe(value);
    }
    expect(one('RestrictAddressFamilies')!.split(/\s+/).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    // Node's JIT needs writable executable memory: this option would kill it at start.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
  });

  it('sits beside the agent unit, with the same restart policy', () => {
    const agent = parseUnit(AGENT_UNIT).get('Service')!;
    expect(agent.get('Restart')).toEqual(['always']);
    expect(agent.get('EnvironmentFile')).toEqual(['/etc/remotegpu/agent.env']);
  });

  it('passes systemd-analyze verify without a warning (where systemd-analyze exists), like the agent unit', async () => {
    if (!(await systemdAnalyze())) {
      console.log('systemd-analyze not installed: the unit was checked by parsing only');
      return;
    }
    for (const file of [UNIT, AGENT_UNIT]) {
      const { stdout, stderr } = await run('systemd-analyze', ['verify', file]).catch((err: { stdout: string; stderr: string; message: string }) => {
        throw new Error(`systemd-analyze verify ${path.basename(file)} failed: ${err.stderr || err.message}`);
      });
      // Lines it cannot parse are only warned about ("..., ignoring"). Missing binaries of the
      // machine running the test (docker.service for the agent unit) are not the unit's fault.
      const warnings = `${stdout}${stderr}`.split('\n').filter((l) => l.trim() !== '' && !/docker\.service|Cannot find unit|not found/i.test(l));
      expect(warnings, path.basename(file)).toEqual([]);
    }
  });
});
