import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadControllerConfig } from '../../controller/config.js';
import { startController } from '../../controller/server.js';

// A controller restarted on the same embedded database keeps its generated secrets: the admin token
// is printed only at the first start and still works, and the cluster CA stays the same (its key
// decrypted with the secret key file in the data directory), so agents that pinned it still trust it.
describe('controller restarts on the same data directory', () => {
  it('keeps the cluster CA and the admin created at the first start', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-server-'));
    const config = loadControllerConfig({ REMOTEGPU_DATA_DIR: dir, REMOTEGPU_HTTP_PORT: '0', REMOTEGPU_GRPC_PORT: '0', REMOTEGPU_HTTP_HOST: '127.0.0.1', REMOTEGPU_GRPC_HOST: '127.0.0.1' });
    try {
      const first = await startController(config, pino({ level: 'silent' }));
      const admin = first.generatedAdminToken;
      const pin = first.caPin;
      expect(first.bootstrapJoinToken).toBeUndefined();
      await first.stop();
      expect(admin).toMatch(/^rgpu_[A-Za-z0-9_-]{43}$/);
      expect(pin).toMatch(/^sha256:[0-9a-f]{64}$/);

      const second = await startController(config, pino({ level: 'silent' }));
      try {
        expect(second.generatedAdminToken).toBeUndefined();
        expect(second.caPin).toBe(pin);
        const health = await fetch(`${second.httpUrl}/healthz`);
        expect(health.status).toBe(200);
        const hosts = await fetch(`${second.httpUrl}/api/v1/admin/hosts`, { headers: { authorization: `Bearer ${admin}` } });
        expect(hosts.status).toBe(200);
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
