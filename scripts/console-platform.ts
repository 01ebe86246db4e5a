import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { createLogger } from '../common/logger.js';
import { platformEnvAt, startLocalPlatform, DEFAULT_FAKE_GPUS, LOCAL_IMAGE, type LocalPlatform } from './local-platform.js';
import { launchBrowser, signIn } from '../test/helpers/browser.js';
import { releaseRunDir, removeNamespace, testDocker, testRunDir } from '../test/helpers/docker.js';

/**
 * The real platform (controller, agent, Docker, 10 simulated A40s) with a headless Chromium signed
 * in to its console: what bench/terminal-latency.ts and scripts/console-screenshots.ts drive. Own
 * Docker namespace, data directory and run directory; published ports only in `ports` (SSH in the
 * first half, Jupyter in the second).
 */
export interface ConsolePlatform {
  readonly platform: LocalPlatform;
  readonly baseUrl: string;
  readonly adminToken: string;
  readonly browser: Browser;
  /** One REST call as the admin: status and parsed body. */
  api(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Creates an environment (devbox image) and waits until it runs; returns its id. */
  createRunning(name: string, gpu: number): Promise<string>;
  /** A new page (its own browser context) signed in to the console as the admin. */
  signedInPage(viewport?: { width: number; height: number }, lang?: 'en' | 'zh'): Promise<Page>;
  /** Deletes the environments it created, stops everything, removes its containers and files. */
  stop(): Promise<void>;
}

const MIB = 2 ** 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** The variables of the platform's controller and agent (see scripts/local-platform.ts). */
function platformEnv(adminToken: string, namespace: string, dir: string, runDir: string, ports: readonly [number, number]) {
  const half = Math.floor((ports[0] + ports[1]) / 2);
  return platformEnvAt({ dir, runDir, adminToken, namespace }, {
    REMOTEGPU_FAKE_GPUS: DEFAULT_FAKE_GPUS,
    REMOTEGPU_REPORT_INTERVAL_MS: '1000',
    REMOTEGPU_RECONCILE_INTERVAL_MS: '500',
    REMOTEGPU_SSH_PORT_RANGE: `${ports[0]}-${half}`,
    REMOTEGPU_JUPYTER_PORT_RANGE: `${half + 1}-${ports[1]}`,
  });
}

/** A REST caller authenticated as `token`. */
function restAs(baseUrl: string, token: string) {
  return async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${baseUrl}${p}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

export async function startConsolePlatform(name: string, ports: readonly [number, number]): Promise<ConsolePlatform> {
  const adminToken = `rgpu_${name}-admin-token-0123456789abcdef`;
  const namespace = `${name}-${process.pid}`;
  const dir = mkdtempSync(path.join(tmpdir(), `rgpu-${name}-`));
  const runDir = testRunDir();
  // The devbox image is built (scripts/build-test-image.sh) only when it is missing.
  const buildImage = !(await testDocker().getImage(LOCAL_IMAGE.dockerRef).inspect().then(() => true, () => false));
  const platform = await startLocalPlatform(platformEnv(adminToken, namespace, dir, runDir, ports), createLogger({ name, level: 'warn' }), { buildImage });
  const cleanup = async () => {
    await platform.stop();
    await removeNamespace(namespace);
    await releaseRunDir(runDir);
    rmSync(dir, { recursive: true, force: true });
  };
  const baseUrl = platform.controller.httpUrl;
  const api = restAs(baseUrl, adminToken);
  let browser: Browser;
  try {
    if (platform.agentProblem) throw new Error(`no agent: ${platform.agentProblem}`);
    await until('the host registered', async () => (await api('GET', '/api/v1/admin/hosts')).body?.data?.items?.length === 1, 60_000);
    browser = await launchBrowser();
  } catch (err) {
    await cleanup();
    throw err;
  }
  const created: string[] = [];
  return {
    platform,
    baseUrl,
    adminToken,
    browser,
    api,
    async createRunning(envName, gpu) {
      const res = await api('POST', '/api/v1/environments', { name: envName, image: LOCAL_IMAGE.name, cpu: 1, memory: 512 * MIB, gpu, storage: 2 ** 30 });
      if (res.status !== 201) throw new Error(`create ${envName}: ${res.status} ${JSON.stringify(res.body)}`);
      const id: string = res.body.data.env_id;
      created.push(id);
      await until(`${envName} running`, async () => (await api('GET', `/api/v1/environments/${id}`)).body?.data?.status === 'running', 120_000);
      return id;
    },
    async signedInPage(viewport = { width: 1280, height: 800 }, lang = 'en') {
      const page = await (await browser.newContext({ viewport })).newPage();
      await signIn(page, baseUrl, adminToken, lang);
      return page;
    },
    async stop() {
      await browser.close().catch(() => {});
      for (const id of created) await api('DELETE', `/api/v1/environments/${id}`).catch(() => {});
      const gone = async () => (await Promise.all(created.map(async (id) => (await api('GET', `/api/v1/environments/${id}`)).status === 404))).every(Boolean);
      await until('environments removed', gone, 60_000).catch(() => {});
      await cleanup();
    },
  };
}
