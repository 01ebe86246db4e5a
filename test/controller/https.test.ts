import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { ConfigError } from '../../common/config.js';
import { loadControllerConfig } from '../../controller/config.js';
import { describeRestApi, listenHttp, readTlsFiles } from '../../controller/http-server.js';
import { startController, type RunningController } from '../../controller/server.js';
import { selfSignedCertificate, type SelfSigned } from '../helpers/self-signed.js';

const run = promisify(execFile);

interface Got {
  readonly status: number;
  readonly text: string;
  /** Whether the body had ended (false: `until` matched while the response was still open). */
  readonly ended: boolean;
}

/** One HTTPS request trusting `ca`; with `until`, reads a streaming body until it matches, then hangs up. */
function httpsGet(url: string, ca: string, options: { headers?: Record<string, string>; method?: string; body?: string; until?: RegExp } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (options.until?.test(text)) {
          resolve({ status: res.statusCode ?? 0, text, ended: false });
          req.destroy();
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, ended: true }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const baseEnv = (dir: string, cert: SelfSigned) => ({
  REMOTEGPU_DATA_DIR: dir,
  REMOTEGPU_HTTP_PORT: '0',
  REMOTEGPU_GRPC_PORT: '0',
  REMOTEGPU_HTTP_HOST: '127.0.0.1',
  REMOTEGPU_GRPC_HOST: '127.0.0.1',
  REMOTEGPU_HTTP_TLS_CERT: cert.certFile,
  REMOTEGPU_HTTP_TLS_KEY: cert.keyFile,
});

describe('REST API over HTTPS (REMOTEGPU_HTTP_TLS_CERT, REMOTEGPU_HTTP_TLS_KEY)', () => {
  let dir: string;
  let cert: SelfSigned;
  let controller: RunningController;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-https-'));
    cert = await selfSignedCertificate(dir);
    controller = await startController(loadControllerConfig(baseEnv(path.join(dir, 'data'), cert)), pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await controller?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves https:// on the address it reports, and nothing over plain HTTP', async () => {
    const port = Number(new URL(controller.httpUrl).port);
    expect(controller.httpUrl).toBe(`https://127.0.0.1:${port}`);
    expect(controller.httpListen).toBe(`127.0.0.1:${port}`);
    expect(describeRestApi(controller)).toBe(controller.httpUrl);
    const health = await httpsGet(`${controller.httpUrl}/healthz`, cert.certPem);
    expect(health.status).toBe(200);
    const openapi = await httpsGet(`${controller.httpUrl}/api/v1/openapi.json`, cert.certPem);
    expect(JSON.parse(openapi.text).openapi).toMatch(/^3\./);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    // Not trusted without the certificate: it really is TLS with that certificate.
    await expect(fetch(`${controller.httpUrl}/healthz`)).rejects.toThrow();
  });

  it('streams a log follow (server-sent events) over HTTPS', async () => {
    const admin = controller.generatedAdminToken!;
    const { db } = controller.database;
    await db.insertInto('images').values({ name: 'img:1', docker_ref: 'remotegpu/devbox:1', jupyter_port: 8888 }).execute();
    // A host with room and no agent: the environment is placed there, its platform events are logged.
    const capacity = { cpu_cores: 8, memory_bytes: 2 ** 36, disk_total_bytes: 2 ** 40, disk_free_bytes: 2 ** 40 };
    await db.insertInto('hosts').values({ id: 'host-tls', hostname: 'h', public_address: '127.0.0.1', agent_address: '127.0.0.1:1', last_report_at: new Date(), ...capacity }).execute();
    const headers = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    const body = JSON.stringify({ name: 'tls', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30 });
    const created = await httpsGet(`${controller.httpUrl}/api/v1/environments`, cert.certPem, { method: 'POST', headers, body });
    expect(created.status).toBe(201);
    const envId = JSON.parse(created.text).data.env_id as string;
    const follow = await httpsGet(`${controller.httpUrl}/api/v1/environments/${envId}/logs?follow=true&lines=10`, cert.certPem, {
      headers: { authorization: `Bearer ${admin}` },
      until: /data: \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] /,
    });
    expect(follow.status).toBe(200);
    expect(follow.ended).toBe(false); // still streaming when the first event came
    expect(follow.text).toMatch(/data: \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] Scheduled on host-tls/);
  });
});

describe('HTTPS configuration errors', () => {
  let dir: string;
  let cert: SelfSigned;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-https-bad-'));
    cert = await selfSignedCertificate(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is a one-line config error when only one of the two variables is set', () => {
    for (const [set, unset] of [
      ['REMOTEGPU_HTTP_TLS_CERT', 'REMOTEGPU_HTTP_TLS_KEY'],
      ['REMOTEGPU_HTTP_TLS_KEY', 'REMOTEGPU_HTTP_TLS_CERT'],
    ] as const) {
      let error: unknown;
      try {
        loadControllerConfig({ [set]: '/etc/remotegpu/x.pem' });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe(
        `invalid configuration: ${unset}=(unset): set it together with ${set} (PEM files) to serve HTTPS, or unset both for HTTP`,
      );
    }
    expect(loadControllerConfig({}).httpTls).toBeUndefined();
    expect(loadControllerConfig({ REMOTEGPU_HTTP_TLS_CERT: 'c.pem', REMOTEGPU_HTTP_TLS_KEY: 'k.pem' }).httpTls).toEqual({ certFile: 'c.pem', keyFile: 'k.pem' });
  });

  it('names the variable and the file when a file is missing, not PEM, or the key does not match', async () => {
    const missing = path.join(dir, 'nope.pem');
    const garbage = path.join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a pem\n');
    const other = await selfSignedCertificate(mkdtempSync(path.join(dir, 'other-')));
    const cases: [{ certFile: string; keyFile: string }, string][] = [
      [{ certFile: cert.certFile, keyFile: missing }, `REMOTEGPU_HTTP_TLS_KEY=${JSON.stringify(missing)}: cannot read the file (no such file)`],
      [{ certFile: missing, keyFile: cert.keyFile }, `REMOTEGPU_HTTP_TLS_CERT=${JSON.stringify(missing)}: cannot read the file (no such file)`],
      [{ certFile: dir, keyFile: cert.keyFile }, `REMOTEGPU_HTTP_TLS_CERT=${JSON.stringify(dir)}: cannot read the file (a directory, not a file)`],
      [{ certFile: garbage, keyFile: cert.keyFile }, `REMOTEGPU_HTTP_TLS_CERT=${JSON.stringify(garbage)}: not a PEM certificate`],
      [{ certFile: cert.certFile, keyFile: garbage }, `REMOTEGPU_HTTP_TLS_KEY=${JSON.stringify(garbage)}: not a PEM private key`],
      [{ certFile: cert.certFile, keyFile: other.keyFile }, `REMOTEGPU_HTTP_TLS_KEY=${JSON.stringify(other.keyFile)}: does not match the certificate in ${cert.certFile}`],
    ];
    for (const [files, expected] of cases) {
      let error: unknown;
      try {
        readTlsFiles(files);
      } catch (err) {
        error = err;
      }
      expect(error, expected).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(`invalid configuration: ${expected}`);
      expect((error as Error).message.split('\n')).toHaveLength(1);
    }
  });

  it('startController fails on a missing key file before it opens the database', async () => {
    const data = path.join(dir, 'data');
    const config = loadControllerConfig({ ...baseEnv(data, cert), REMOTEGPU_HTTP_TLS_KEY: path.join(dir, 'missing-key.pem') });
    await expect(startController(config, pino({ level: 'silent' }))).rejects.toThrow(/^invalid configuration: REMOTEGPU_HTTP_TLS_KEY=".*missing-key\.pem": cannot read the file \(no such file\)$/);
    expect(existsSync(data) ? readdirSync(data) : []).toEqual([]);
  });

  it('makes the real process exit 2 with that one line, no stack trace', async () => {
    const keyFile = path.join(dir, 'missing-key.pem');
    const env = { ...process.env, ...baseEnv(path.join(dir, 'data-main'), cert), REMOTEGPU_HTTP_TLS_KEY: keyFile };
    const result = await run('node', ['--import', 'tsx', 'controller/main.ts'], { env, timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([
      `remotegpu-controller: invalid configuration: REMOTEGPU_HTTP_TLS_KEY=${JSON.stringify(keyFile)}: cannot read the file (no such file)`,
    ]);
  });

  it('accepts a certificate made with @peculiar/x509 (the fallback without openssl)', async () => {
    const x509Dir = mkdtempSync(path.join(dir, 'x509-'));
    const made = await selfSignedCertificate(x509Dir, { useOpenssl: false });
    const server = await listenHttp(() => new Response('ok'), '127.0.0.1', 0, readTlsFiles(made));
    try {
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(await httpsGet(`${server.url}/`, made.certPem)).toEqual({ status: 200, text: 'ok', ended: true });
    } finally {
      await server.close();
    }
  });

  it('announces a listener on every interface with the loopback URL and where it listens', () => {
    expect(describeRestApi({ httpUrl: 'https://127.0.0.1:8443', httpListen: '0.0.0.0:8443' })).toBe('https://127.0.0.1:8443 (listening on 0.0.0.0:8443, all interfaces)');
    expect(describeRestApi({ httpUrl: 'http://127.0.0.1:8080', httpListen: '[::]:8080' })).toBe('http://127.0.0.1:8080 (listening on [::]:8080, all interfaces)');
    expect(describeRestApi({ httpUrl: 'http://10.0.0.5:8080', httpListen: '10.0.0.5:8080' })).toBe('http://10.0.0.5:8080');
  });
});
