import { Server } from '@grpc/grpc-js';
import { createLogger } from '../../../common/logger.js';
import { loadControllerConfig } from '../../../controller/config.js';
import { ControllerServices } from '../../../controller/services.js';
import { ClusterTrust } from '../../../controller/trust/cluster-trust.js';
import { TEST_SECRET_KEY } from '../../helpers/api.js';
import type { AgentEvent, HostObserver, ObservedEnvironment, ReportContext } from '../../../controller/hosts/types.js';
import { createTestDatabase, type DbTarget, type TestDatabase } from '../../helpers/databases.js';
import type { Db } from '../../../controller/db/database.js';

// A controller's hosts side for tests: a fresh database, the real ControllerServices, and the real
// ControlPlane served over gRPC on 127.0.0.1. Loops are not started; tests start what they need.

export const JOIN_TOKEN = 'test-join-token-0123456789abcdef';

/** A HostObserver that records every call; `failReports` makes onReport throw. */
export class RecordingObserver implements HostObserver {
  readonly reports: { hostId: string; environments: readonly ObservedEnvironment[]; events: readonly AgentEvent[]; context?: ReportContext | undefined }[] = [];
  readonly offline: string[] = [];
  failReports = false;

  async onReport(hostId: string, environments: readonly ObservedEnvironment[], events: readonly AgentEvent[], context?: ReportContext): Promise<void> {
    if (this.failReports) throw new Error('observer failed on purpose');
    this.reports.push({ hostId, environments, events, context });
  }

  async onHostOffline(hostId: string): Promise<void> {
    this.offline.push(hostId);
  }
}

export interface HostsFixture {
  readonly db: Db;
  readonly database: TestDatabase;
  readonly services: ControllerServices;
  readonly observer: RecordingObserver;
  /** host:port of the ControlPlane. */
  readonly address: string;
  /** The cluster CA (PEM) test agents trust. */
  readonly caPem: string;
  /** What startTestAgent needs to join this controller: address, bootstrap join token, CA (and plaintext mode). */
  readonly join: { readonly controllerAddress: string; readonly joinToken: string; readonly caPem: string; readonly insecure: boolean };
  close(): Promise<void>;
}

/** Starts the fixture; `env` overrides controller variables (e.g. REMOTEGPU_HOST_TIMEOUT_MS). */
export async function startHostsFixture(target: DbTarget, env: Record<string, string> = {}): Promise<HostsFixture> {
  const database = await createTestDatabase(target);
  const config = loadControllerConfig({
    REMOTEGPU_DATA_DIR: 'memory://',
    REMOTEGPU_JOIN_TOKEN: JOIN_TOKEN,
    REMOTEGPU_SECRET_KEY: TEST_SECRET_KEY,
    REMOTEGPU_REPORT_INTERVAL_MS: '1000',
    REMOTEGPU_AGENT_TIMEOUT_MS: '3000',
    // Changed GPU usage is written at every report here (tests of the refresh period set their own).
    REMOTEGPU_TELEMETRY_REFRESH_MS: '0',
    REMOTEGPU_LOG_LEVEL: 'silent',
    ...env,
  });
  const logger = createLogger({ name: 'test', level: 'silent' });
  const observer = new RecordingObserver();
  const trust = await ClusterTrust.create({ db: database.db, config, logger });
  const services = new ControllerServices({ db: database.db, config, logger, trust, dbKind: target.name, hostObserver: observer });
  const server = new Server();
  services.registerGrpc(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', trust.serverCredentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    db: database.db,
    database,
    services,
    observer,
    address: `127.0.0.1:${port}`,
    caPem: trust.ca.certPem,
    join: { controllerAddress: `127.0.0.1:${port}`, joinToken: JOIN_TOKEN, caPem: trust.ca.certPem, insecure: trust.insecure },
    async close() {
      await services.stop();
      server.forceShutdown();
      await database.close();
    },
  };
}
