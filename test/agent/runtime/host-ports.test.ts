import { createServer, type Server } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  busyPorts,
  defaultPublishAddress,
  parseTcpListeners,
  portFree,
  portInDockerMessage,
} from '../../../agent/runtime/host-ports.js';
import { classifyDockerMessage, toRuntimeError } from '../../../agent/runtime/docker-errors.js';
import { addressesOverlap, ephemeralOverlapWarnings, parseEphemeralRange, rangesOverlap, readEphemeralRange } from '../../../common/ports.js';

// Issue 15, item 4: the agent reports the host's busy TCP ports (listeners from /proc/net/tcp and
// tcp6, read asynchronously) and its ephemeral range, and checks a port is free right before it
// publishes it. Real sockets on 127.0.0.1, ports from this file's range (30900-30949).

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:78A0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:78A1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0200007F:78A2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
   3: 0100007F:8CA0 0100007F:78A1 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:78A3 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:78A4 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000300007F:78A5 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 100 0 0 10 0
`;

describe('busy ports from /proc/net/tcp{,6}', () => {
  it('parses listeners only (state 0A), IPv4, IPv6 and IPv4-mapped addresses', () => {
    expect(parseTcpListeners(TCP)).toEqual([
      { address: '0.0.0.0', port: 30880 },
      { address: '127.0.0.1', port: 30881 },
      { address: '127.0.0.2', port: 30882 },
    ]);
    expect(parseTcpListeners(TCP6)).toEqual([
      { address: '::', port: 30883 },
      { address: '::1', port: 30884 },
      { address: '127.0.0.3', port: 30885 },
    ]);
  });

  it('a port is busy for an address when a listener is on it or on a wildcard (or the address is the wildcard)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rgpu-ports-'));
    try {
      await writeFile(join(dir, 'tcp'), TCP);
      await writeFile(join(dir, 'tcp6'), TCP6);
      const tables = [join(dir, 'tcp'), join(dir, 'tcp6'), join(dir, 'missing')];
      expect(await busyPorts('0.0.0.0', tables)).toEqual([30880, 30881, 30882, 30883, 30884, 30885]);
      expect(await busyPorts('127.0.0.2', tables)).toEqual([30880, 30882, 30883]);
      expect(await busyPorts('127.0.0.3', tables)).toEqual([30880, 30883, 30885]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(addressesOverlap('127.0.0.2', '127.0.0.3')).toBe(false);
    expect(addressesOverlap('::', '127.0.0.3')).toBe(true);
  });

  describe('on this host', () => {
    const servers: Server[] = [];
    afterAll(async () => {
      for (const s of servers) await new Promise((r) => s.close(r));
    });
    const listen = (port: number, host: string) =>
      new Promise<void>((resolve, reject) => {
        const s = createServer();
        servers.push(s);
        s.once('error', reject).listen({ port, host }, () => resolve());
      });

    it('reports a real listener and finds its port taken; a free one free', async () => {
      await listen(30900, '127.0.0.1');
      expect(await busyPorts('127.0.0.1')).toContain(30900);
      expect(await busyPorts('0.0.0.0')).toContain(30900);
      expect(await busyPorts('127.0.0.2')).not.toContain(30900);
      expect(await portFree('127.0.0.1', 30900)).toBe(false);
      expect(await portFree('0.0.0.0', 30900)).toBe(false);
      expect(await portFree('127.0.0.1', 30901)).toBe(true);
      // The probe closed its socket: the port can be bound again at once.
      expect(await portFree('127.0.0.1', 30901)).toBe(true);
    });

    it('reads the real ephemeral range', async () => {
      const range = await readEphemeralRange();
      if (range) expect(range.from).toBeLessThanOrEqual(range.to);
      expect(await readEphemeralRange('/nonexistent')).toBeNull();
    });
  });
});

describe('ports Docker names in its errors', () => {
  it('finds the port in both of Docker’s messages and keeps it on the RuntimeError', () => {
    const allocated = 'driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:20005 failed: port is already allocated';
    const proxy = 'driver failed programming external connectivity on endpoint x (abc): Error starting userland proxy: listen tcp4 127.0.0.1:45123: bind: address already in use';
    expect(portInDockerMessage(allocated)).toBe(20005);
    expect(portInDockerMessage(proxy)).toBe(45123);
    expect(portInDockerMessage('listen tcp6 [::]:25001: bind: address already in use')).toBe(25001);
    expect(portInDockerMessage('no such image')).toBeUndefined();
    expect(classifyDockerMessage(allocated, 500)).toBe('port_conflict');
    const err = toRuntimeError({ statusCode: 500, json: { message: allocated } });
    expect({ code: err.code, port: err.port }).toEqual({ code: 'port_conflict', port: 20005 });
  });
});

describe('the publish address', () => {
  it('defaults to the public address when it is an IP the host has, else every address', () => {
    expect(defaultPublishAddress('127.0.0.2', [])).toBe('127.0.0.2');
    expect(defaultPublishAddress('127.0.0.1', [])).toBe('127.0.0.1');
    expect(defaultPublishAddress('localhost', [])).toBe('127.0.0.1');
    expect(defaultPublishAddress('10.1.2.3', ['10.1.2.3'])).toBe('10.1.2.3');
    // Behind NAT: the public address is not on the host, binding it would fail.
    expect(defaultPublishAddress('34.1.2.3', ['10.1.2.3'])).toBe('0.0.0.0');
    expect(defaultPublishAddress('gpu-1.example.com', ['10.1.2.3'])).toBe('0.0.0.0');
  });
});

describe('the ephemeral range', () => {
  it('parses ip_local_port_range and words one warning per overlapping setting', () => {
    expect(parseEphemeralRange('32768\t60999\n')).toEqual({ from: 32768, to: 60999 });
    expect(parseEphemeralRange('garbage')).toBeNull();
    expect(rangesOverlap({ from: 30000, to: 39999 }, { from: 32768, to: 60999 })).toBe(true);
    const ranges = [
      { setting: 'REMOTEGPU_SSH_PORT_RANGE', range: { from: 30000, to: 39999 } },
      { setting: 'REMOTEGPU_JUPYTER_PORT_RANGE', range: { from: 25000, to: 28999 } },
    ];
    const warnings = ephemeralOverlapWarnings(ranges, { from: 32768, to: 60999 }, 'host h');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('REMOTEGPU_SSH_PORT_RANGE 30000-39999 overlaps the ephemeral port range 32768-60999 of host h');
    expect(ephemeralOverlapWarnings(ranges, null, 'host h')).toEqual([]);
  });
});
