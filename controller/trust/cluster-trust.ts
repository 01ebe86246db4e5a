import { createHmac, X509Certificate } from 'node:crypto';
import os from 'node:os';
import { credentials, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ReloadableServerCredentials, sharedContextCredentials } from '../../common/grpc-tls.js';
import type { Logger } from '../../common/logger.js';
import { caPin, issueCertificate, issueKeyAndCertificate, renewAt, type Identity, type KeyAndCert } from '../../common/pki.js';
import type { ControllerConfig } from '../config.js';
import type { Db } from '../db/database.js';
import { loadClusterCa } from './cluster-ca.js';
import { readCaFiles, readControllerFiles } from './pki-files.js';
import { loadSecretKey } from './secret-key.js';

export interface ClusterTrustDeps {
  readonly db: Db;
  readonly config: Pick<ControllerConfig, 'secretKey' | 'dataDir' | 'grpcInsecure' | 'certValidityMs' | 'clusterTls'>;
  readonly logger: Logger;
}

type Issuable = Parameters<typeof issueCertificate>[0]['publicKey'];
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Who the controller trusts and how it proves itself: the cluster CA, the controller's own
 * certificate (a fresh key at every start, kept in memory only, renewed after two thirds of its
 * lifetime without restarting anything), the gRPC server credentials of the ControlPlane and the
 * client credentials for dialling agents. With REMOTEGPU_GRPC_INSECURE=1 both directions are
 * plaintext and hosts authenticate with a bearer credential derived from the secret key (stored
 * nowhere).
 */
export class ClusterTrust {
  /** Plaintext gRPC (REMOTEGPU_GRPC_INSECURE=1). */
  readonly insecure: boolean;
  /** The pin agents check: "sha256:" + hash of the CA public key. */
  readonly caPin: string;
  readonly serverCredentials: ServerCredentials;
  /** Bumped at every renewal of the controller certificate (agent connections are remade). */
  generation = 0;
  private own: KeyAndCert;
  private clientContext: { generation: number; context: SecureContext } | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** After unchanged operator files, the next look at them. */
  private quietUntil = 0;
  private readonly log: Logger;

  private constructor(
    private readonly deps: ClusterTrustDeps,
    private readonly secretKey: Buffer,
    readonly ca: KeyAndCert,
    own: KeyAndCert,
  ) {
    this.insecure = deps.config.grpcInsecure;
    this.caPin = caPin(ca.certPem);
    this.own = own;
    this.log = deps.logger.child({ component: 'trust' });
    this.serverCredentials = this.insecure ? ServerCredentials.createInsecure() : new ReloadableServerCredentials(this.material(), false);
  }

  /**
   * Loads (or creates) the secret key and the cluster CA (or reads the operator's CA files), and
   * issues the controller certificate (or reads the operator's).
   */
  static async create(deps: ClusterTrustDeps): Promise<ClusterTrust> {
    const files = deps.config.clusterTls;
    const key = await loadSecretKey({ secretKey: deps.config.secretKey, dataDir: deps.config.dataDir, logger: deps.logger });
    const ca = files.ca ? readCaFiles(files.ca) : await loadClusterCa(deps.db, key, deps.logger);
    return new ClusterTrust(deps, key, ca, await ClusterTrust.issueOwn(ca, deps.config));
  }

  /** A fresh controller key and certificate, or the operator's files read again (replace them to rotate). */
  private static async issueOwn(ca: KeyAndCert, config: ClusterTrustDeps['config']): Promise<KeyAndCert> {
    if (config.clusterTls.controller) return readControllerFiles(config.clusterTls.controller, ca);
    const validityMs = config.certValidityMs;
    return issueKeyAndCertificate({ ca, identity: { kind: 'controller' }, validityMs, dnsNames: ['localhost', os.hostname()], ips: ['127.0.0.1', '::1'] });
  }

  /** The controller's current certificate (PEM). */
  get certificatePem(): string {
    return this.own.certPem;
  }

  /** Renews the controller certificate on schedule until stop(). */
  start(): void {
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Replaces the controller certificate now: new connections use it, open ones are not dropped. */
  async renew(): Promise<void> {
    const next = await ClusterTrust.issueOwn(this.ca, this.deps.config);
    if (next.certPem === this.own.certPem) {
      this.log.warn({ notAfter: new X509Certificate(next.certPem).validTo }, 'controller certificate is due for renewal but REMOTEGPU_TLS_CERT is unchanged: replace the files');
      this.quietUntil = Date.now() + 600_000;
      return;
    }
    this.own = next;
    if (this.serverCredentials instanceof ReloadableServerCredentials) this.serverCredentials.update(this.material());
    this.generation++;
    this.log.info({ generation: this.generation }, 'controller certificate renewed');
  }

  private schedule(): void {
    const delay = Math.max(1000, renewAt(this.own.certPem).getTime() - Date.now(), this.quietUntil - Date.now());
    this.timer = setTimeout(() => {
      if (delay > MAX_TIMER_MS) return this.schedule();
      this.renew()
        .catch((err: unknown) => this.log.error({ err }, 'controller certificate renewal failed; retrying'))
        .finally(() => {
          if (this.timer) this.schedule();
        });
    }, Math.min(delay, MAX_TIMER_MS));
    this.timer.unref();
  }

  /** What the ControlPlane serves: the controller certificate followed by the CA (agents pin the CA). */
  private material() {
    return { caPem: this.ca.certPem, certPem: this.own.certPem + this.ca.certPem, keyPem: this.own.keyPem };
  }

  /**
   * Client credentials for dialling the agent of `hostId`: only a server certificate naming that
   * host, and (when given) one of the `fingerprints` issued to it, is accepted.
   */
  agentCredentials(hostId: string, fingerprints?: readonly string[]): ChannelCredentials {
    if (this.insecure) return credentials.createInsecure();
    const expect: Identity = { kind: 'host', hostId };
    // One TLS context (CA, own key and certificate) for every agent channel, made again after a renewal.
    if (this.clientContext?.generation !== this.generation) {
      this.clientContext = { generation: this.generation, context: createSecureContext({ ca: this.ca.certPem, key: this.own.keyPem, cert: this.own.certPem }) };
    }
    return sharedContextCredentials(this.clientContext.context, expect, fingerprints);
  }

  /** A certificate for a host's key (from its CSR). */
  issueHostCertificate(publicKey: Issuable, hostId: string): ReturnType<typeof issueCertificate> {
    return issueCertificate({ ca: this.ca, publicKey, identity: { kind: 'host', hostId }, validityMs: this.deps.config.certValidityMs });
  }

  /** The plaintext-mode bearer credential of a host: derived from the secret key, stored nowhere. */
  hostCredential(hostId: string): string {
    return createHmac('sha256', this.secretKey).update(`host credential\0${hostId}`).digest('base64url');
  }
}
