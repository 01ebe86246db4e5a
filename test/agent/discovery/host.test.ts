import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverHost, parseOsRelease, pickAddresses } from '../../../agent/discovery/host.js';

describe('pickAddresses', () => {
  it('drops loopback, link-local and container plumbing; IPv4 first', () => {
    const nets = [
      { iface: 'lo', ip4: '127.0.0.1', ip6: '::1', internal: true },
      { iface: 'eth0', ip4: '10.0.0.5', ip6: 'fd00::5', internal: false },
      { iface: 'docker0', ip4: '172.17.0.1', ip6: 'fe80::42:aeff:fe00:1', internal: false },
      { iface: 'veth1234', ip4: '', ip6: 'fe80::1', internal: false },
      { iface: 'ib0', ip4: '192.168.10.5', ip6: 'fe80::2', internal: false },
    ];
    expect(pickAddresses(nets)).toEqual(['10.0.0.5', '192.168.10.5', 'fd00::5']);
  });
});

describe('parseOsRelease', () => {
  it('reads KEY=value lines, quoted or not', () => {
    const text = 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID=\'22.04\'\nID=ubuntu\n# comment\n\n';
    expect(parseOsRelease(text)).toEqual({ PRETTY_NAME: 'Ubuntu 22.04.4 LTS', NAME: 'Ubuntu', VERSION_ID: '22.04', ID: 'ubuntu' });
  });
});

describe('discoverHost', () => {
  it('describes this machine', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'host-'));
    try {
      const host = await discoverHost(join(dir, 'not-yet-created', 'data'));
      expect(host.hostname).toBe(hostname());
      expect(host.memoryBytes).toBe(totalmem());
      expect(host.cpuCores).toBeGreaterThan(0);
      expect(host.cpuModel).not.toBe('');
      expect(host.kernel).toMatch(/^\d+\.\d+/);
      expect(host.os).not.toBe('');
      for (const address of host.addresses) expect(address).not.toMatch(/^(127\.|::1$|fe80:)/i);
      const fs = statfsSync(dir);
      const total = fs.blocks * fs.bsize;
      expect(Math.abs(host.diskTotalBytes - total)).toBeLessThanOrEqual(total * 0.01);
      expect(host.diskFreeBytes).toBeGreaterThan(0);
      expect(host.diskFreeBytes).toBeLessThanOrEqual(host.diskTotalBytes);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
