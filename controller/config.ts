import { z } from 'zod';
import { ConfigError, intVar, logLevelVar, parseEnv, portRangeVar, portVar } from '../common/config.js';

/** Every environment variable the controller reads, with defaults. Documented in README.md. */
const schema = z.object({
  REMOTEGPU_HTTP_PORT: portVar(8080),
  REMOTEGPU_HTTP_HOST: z.string().default('0.0.0.0'),
  REMOTEGPU_HTTP_TLS_CERT: z.string().optional(),
  REMOTEGPU_HTTP_TLS_KEY: z.string().optional(),
  REMOTEGPU_GRPC_PORT: portVar(9090),
  REMOTEGPU_GRPC_HOST: z.string().default('0.0.0.0'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL')
    .optional(),
  REMOTEGPU_DB_CONNECT_TIMEOUT_MS: intVar(5_000, 100),
  REMOTEGPU_DB_POOL_SIZE: intVar(10, 1, 1000),
  // The reconciler's pass lock pins one connection for as long as passes run: at least one more for its work.
  REMOTEGPU_RECONCILER_DB_POOL_SIZE: intVar(10, 2, 1000),
  REMOTEGPU_DATA_DIR: z.string().default('./data'),
  REMOTEGPU_BOOTSTRAP_TOKEN: z.string().min(16, 'expected at least 16 characters').optional(),
  REMOTEGPU_JOIN_TOKEN: z.string().min(16, 'expected at least 16 characters').optional(),
  REMOTEGPU_SECRET_KEY: z.string().min(32, 'expected at least 32 characters (e.g. openssl rand -base64 32)').optional(),
  REMOTEGPU_GRPC_INSECURE: z.enum(['0', '1', 'true', 'false']).default('0'),
  REMOTEGPU_CERT_VALIDITY_S: intVar(30 * 86_400, 5, 3650 * 86_400),
  REMOTEGPU_TLS_CA: z.string().optional(),
  REMOTEGPU_TLS_CA_KEY: z.string().optional(),
  REMOTEGPU_TLS_CERT: z.string().optional(),
  REMOTEGPU_TLS_KEY: z.string().optional(),
  REMOTEGPU_HOST_TIMEOUT_MS: intVar(30_000, 1_000),
  REMOTEGPU_REPORT_INTERVAL_MS: intVar(10_000, 100),
  REMOTEGPU_TELEMETRY_REFRESH_MS: intVar(30_000, 0),
  REMOTEGPU_RECONCILE_INTERVAL_MS: intVar(2_000, 50),
  REMOTEGPU_RECONCILE_BATCH: intVar(200, 1, 10_000),
  REMOTEGPU_RECONCILE_PARALLEL: intVar(64, 1, 10_000),
  REMOTEGPU_RECONCILE_HOST_PARALLEL: intVar(8, 1, 1_000),
  REMOTEGPU_AGENT_TIMEOUT_MS: intVar(30_000, 100),
  // Below Linux's default ephemeral range (32768-60999), where outgoing connections take ports.
  REMOTEGPU_SSH_PORT_RANGE: portRangeVar('20000-24999'),
  REMOTEGPU_JUPYTER_PORT_RANGE: portRangeVar('25000-28999'),
  REMOTEGPU_JUPYTER_URL_TEMPLATE: z.string().default('http://{address}:{port}/?token={token}'),
  REMOTEGPU_MAX_FOLLOWS_PER_USER: intVar(8, 1),
  REMOTEGPU_TERMINAL_MAX_PER_USER: intVar(4, 1),
  REMOTEGPU_TERMINAL_IDLE_TIMEOUT_MS: intVar(30 * 60_000, 1_000),
  REMOTEGPU_METRICS_TOKEN: z.string().min(16, 'expected at least 16 characters').optional(),
  // How long a valid API token's user is trusted without a database read (0: every request reads it).
  REMOTEGPU_AUTH_CACHE_MS: intVar(5_000, 0, 60_000),
  REMOTEGPU_PLACEMENT_INDEX_MAX_AGE_MS: intVar(5_000, 100),
  REMOTEGPU_LOG_LEVEL: logLevelVar,
});

export type ControllerEnv = z.infer<typeof schema>;

export interface ControllerConfig {
  readonly httpPort: number;
  readonly httpHost: string;
  /** PEM files of the REST API's certificate (chain) and key: it serves HTTPS when set, HTTP otherwise. */
  readonly httpTls: HttpTlsFiles | undefined;
  readonly grpcPort: number;
  readonly grpcHost: string;
  readonly databaseUrl: string | undefined;
  /** How long a query waits for a PostgreSQL connection before it fails as unavailable (503). */
  readonly dbConnectTimeoutMs: number;
  /** With `databaseUrl`: connections of the API's pool (requests, reports, loops other than the reconciler). */
  readonly dbPoolSize: number;
  /** With `databaseUrl`: connections of the reconciler's own pool (its pass lock's session included). */
  readonly reconcilerDbPoolSize: number;
  readonly dataDir: string;
  readonly bootstrapToken: string | undefined;
  /** Bootstrap join token (REMOTEGPU_JOIN_TOKEN): hosts registered with it need no approval. */
  readonly joinToken: string | undefined;
  /** Encrypts the cluster CA key (REMOTEGPU_SECRET_KEY); a key file in dataDir when unset. */
  readonly secretKey: string | undefined;
  /** Plaintext gRPC both ways (REMOTEGPU_GRPC_INSECURE=1): development only, warned at every start. */
  readonly grpcInsecure: boolean;
  /** Lifetime of the host and controller certificates, milliseconds; renewed after two thirds. */
  readonly certValidityMs: number;
  /** Operator-supplied PKI files (PEM paths) instead of the generated cluster CA and controller certificate. */
  readonly clusterTls: ClusterTlsFiles;
  readonly hostTimeoutMs: number;
  readonly reportIntervalMs: number;
  /** A report's changed usage figures (free disk, GPU utilization, memory used, temperature) are written when the stored ones are this old. */
  readonly telemetryRefreshMs: number;
  readonly reconcileIntervalMs: number;
  /** How the reconciler spreads its work: see ReconcilerLimits (controller/reconciler/reconciler.ts). */
  readonly reconcile: { readonly batch: number; readonly parallel: number; readonly hostParallel: number };
  readonly agentTimeoutMs: number;
  readonly sshPortRange: { readonly from: number; readonly to: number };
  readonly jupyterPortRange: { readonly from: number; readonly to: number };
  readonly jupyterUrlTemplate: string;
  /** Open log follows (`follow=true`) one user may have on this controller; more are 429. */
  readonly maxFollowsPerUser: number;
  /** Open terminals one user may have on this controller process; more are refused (429 / close 4429). */
  readonly terminalMaxPerUser: number;
  /** A terminal with neither input nor output for this long is closed (4408). */
  readonly terminalIdleTimeoutMs: number;
  /** Bearer token GET /metrics requires (REMOTEGPU_METRICS_TOKEN); unset: /metrics is open. */
  readonly metricsToken: string | undefined;
  /** How long a valid token's principal is kept in memory (ms; 0: not at all). Revocations in this process apply at once. */
  readonly authCacheMs: number;
  /** How old this process's capacity index may grow before a full read of the hosts refreshes it. */
  readonly placementIndexMaxAgeMs: number;
  readonly logLevel: string;
}

/** Reads and validates the controller's configuration. Throws ConfigError (one line) when bad. */
/** The configured port ranges, named by their settings (for the ephemeral-range warnings, common/ports.ts). */
export function configuredPortRanges(config: Pick<ControllerConfig, 'sshPortRange' | 'jupyterPortRange'>) {
  return [
    { setting: 'REMOTEGPU_SSH_PORT_RANGE', range: config.sshPortRange },
    { setting: 'REMOTEGPU_JUPYTER_PORT_RANGE', range: config.jupyterPortRange },
  ];
}

export function loadControllerConfig(env: Record<string, string | undefined> = process.env): ControllerConfig {
  const e = parseEnv(schema, env);
  return Object.freeze({
    httpPort: e.REMOTEGPU_HTTP_PORT,
    httpHost: e.REMOTEGPU_HTTP_HOST,
    httpTls: httpTlsFiles(e.REMOTEGPU_HTTP_TLS_CERT, e.REMOTEGPU_HTTP_TLS_KEY),
    grpcPort: e.REMOTEGPU_GRPC_PORT,
    grpcHost: e.REMOTEGPU_GRPC_HOST,
    databaseUrl: e.DATABASE_URL,
    dbConnectTimeoutMs: e.REMOTEGPU_DB_CONNECT_TIMEOUT_MS,
    dbPoolSize: e.REMOTEGPU_DB_POOL_SIZE,
    reconcilerDbPoolSize: e.REMOTEGPU_RECONCILER_DB_POOL_SIZE,
    dataDir: e.REMOTEGPU_DATA_DIR,
    bootstrapToken: e.REMOTEGPU_BOOTSTRAP_TOKEN,
    joinToken: e.REMOTEGPU_JOIN_TOKEN,
    secretKey: e.REMOTEGPU_SECRET_KEY,
    grpcInsecure: e.REMOTEGPU_GRPC_INSECURE === '1' || e.REMOTEGPU_GRPC_INSECURE === 'true',
    certValidityMs: e.REMOTEGPU_CERT_VALIDITY_S * 1000,
    clusterTls: clusterTlsFiles(e),
    hostTimeoutMs: e.REMOTEGPU_HOST_TIMEOUT_MS,
    reportIntervalMs: e.REMOTEGPU_REPORT_INTERVAL_MS,
    telemetryRefreshMs: e.REMOTEGPU_TELEMETRY_REFRESH_MS,
    reconcileIntervalMs: e.REMOTEGPU_RECONCILE_INTERVAL_MS,
    reconcile: Object.freeze({ batch: e.REMOTEGPU_RECONCILE_BATCH, parallel: e.REMOTEGPU_RECONCILE_PARALLEL, hostParallel: e.REMOTEGPU_RECONCILE_HOST_PARALLEL }),
    agentTimeoutMs: e.REMOTEGPU_AGENT_TIMEOUT_MS,
    sshPortRange: e.REMOTEGPU_SSH_PORT_RANGE,
    jupyterPortRange: e.REMOTEGPU_JUPYTER_PORT_RANGE,
    jupyterUrlTemplate: e.REMOTEGPU_JUPYTER_URL_TEMPLATE,
    maxFollowsPerUser: e.REMOTEGPU_MAX_FOLLOWS_PER_USER,
    terminalMaxPerUser: e.REMOTEGPU_TERMINAL_MAX_PER_USER,
    terminalIdleTimeoutMs: e.REMOTEGPU_TERMINAL_IDLE_TIMEOUT_MS,
    metricsToken: e.REMOTEGPU_METRICS_TOKEN,
    authCacheMs: e.REMOTEGPU_AUTH_CACHE_MS,
    placementIndexMaxAgeMs: e.REMOTEGPU_PLACEMENT_INDEX_MAX_AGE_MS,
    logLevel: e.REMOTEGPU_LOG_LEVEL,
  });
}

export interface HttpTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** Both TLS variables or neither: one alone is a configuration error (one line, like parseEnv's). */
function httpTlsFiles(certFile: string | undefined, keyFile: string | undefined): HttpTlsFiles | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) {
    const [set, unset] = certFile === undefined ? ['REMOTEGPU_HTTP_TLS_KEY', 'REMOTEGPU_HTTP_TLS_CERT'] : ['REMOTEGPU_HTTP_TLS_CERT', 'REMOTEGPU_HTTP_TLS_KEY'];
    throw new ConfigError(`invalid configuration: ${unset}=(unset): set it together with ${set} (PEM files) to serve HTTPS, or unset both for HTTP`);
  }
  return { certFile, keyFile };
}

/** Operator-supplied cluster PKI: the CA (with its key, to sign host certificates) and optionally the controller's certificate. */
export interface ClusterTlsFiles {
  readonly ca: { readonly cert: string; readonly key: string } | undefined;
  readonly controller: { readonly cert: string; readonly key: string } | undefined;
}

function clusterTlsFiles(e: { REMOTEGPU_TLS_CA?: string | undefined; REMOTEGPU_TLS_CA_KEY?: string | undefined; REMOTEGPU_TLS_CERT?: string | undefined; REMOTEGPU_TLS_KEY?: string | undefined }): ClusterTlsFiles {
  const pair = (certVar: string, cert: string | undefined, keyVar: string, key: string | undefined) => {
    if (!cert !== !key) throw new ConfigError(`invalid configuration: set ${certVar} and ${keyVar} together (PEM files), or neither`);
    return cert && key ? { cert, key } : undefined;
  };
  const ca = pair('REMOTEGPU_TLS_CA', e.REMOTEGPU_TLS_CA, 'REMOTEGPU_TLS_CA_KEY', e.REMOTEGPU_TLS_CA_KEY);
  const controller = pair('REMOTEGPU_TLS_CERT', e.REMOTEGPU_TLS_CERT, 'REMOTEGPU_TLS_KEY', e.REMOTEGPU_TLS_KEY);
  if (controller && !ca) throw new ConfigError('invalid configuration: REMOTEGPU_TLS_CERT needs REMOTEGPU_TLS_CA and REMOTEGPU_TLS_CA_KEY (the CA that issued it, which also signs host certificates)');
  return { ca, controller };
}
