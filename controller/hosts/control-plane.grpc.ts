import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import {
  ControlPlaneService,
  type ControlPlaneServer,
  type RegisterRequest,
  type RegisterResponse,
  type RenewCertificateRequest,
  type RenewCertificateResponse,
  type ReportStatusRequest,
  type ReportStatusResponse,
} from '../../gen/remotegpu/v1/control_plane.js';
import { AppError } from '../../common/errors.js';
import { bearerFromMetadata, toGrpcError } from '../../common/grpc.js';
import { peerOf } from '../../common/grpc-tls.js';
import type { Logger } from '../../common/logger.js';
import { eventFromProto, hostFactsFromProto, observedFromProto } from './convert.js';
import type { HostProof } from './host-auth.js';
import type { HostRegistry } from './registry.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import type { ControllerMetrics } from '../metrics/controller-metrics.js';

export { ControlPlaneService };

export interface ControlPlaneDeps {
  readonly registry: HostRegistry;
  /** How often agents should report (REMOTEGPU_REPORT_INTERVAL_MS). */
  readonly reportIntervalMs: number;
  readonly logger: Logger;
  /** Records each call's duration and outcome. */
  readonly metrics?: ControllerMetrics | undefined;
}

/**
 * The ControlPlane gRPC service (the controller side of Register and ReportStatus). A thin edge:
 * reads who called (verified client certificate, or bearer credential in plaintext mode), converts proto to domain, calls the registry, and turns AppErrors
 * into gRPC statuses (internal faults are logged here and sent without detail).
 */
export function controlPlaneServer(deps: ControlPlaneDeps): ControlPlaneServer {
  const log = deps.logger.child({ component: 'control-plane' });
  // Every call below is timed: `answer` here is the module's answer plus its metrics.
  const answer = <T>(_: Logger, method: string, callback: sendUnaryData<T>, run: () => Promise<T>) => answerTimed(log, method, callback, run, deps.metrics);
  return {
    register(call: ServerUnaryCall<RegisterRequest, RegisterResponse>, callback: sendUnaryData<RegisterResponse>) {
      void answer(log, 'Register', callback, async () => {
        const req = call.request;
        if (!req.facts) throw new AppError('invalid_argument', 'facts are required on registration');
        const res = await deps.registry.register({ joinToken: req.joinToken.trim(), csrPem: req.csrPem, facts: hostFactsFromProto(req.facts) });
        return {
          hostId: res.hostId,
          hostCredential: res.credential,
          reportIntervalMs: deps.reportIntervalMs,
          certificatePem: res.certificatePem,
          caPem: res.caPem,
          pendingApproval: res.pendingApproval,
        };
      });
    },
    reportStatus(call: ServerUnaryCall<ReportStatusRequest, ReportStatusResponse>, callback: sendUnaryData<ReportStatusResponse>) {
      void answer(log, 'ReportStatus', callback, async () => {
        const req = call.request;
        const now = new Date();
        await deps.registry.report({
          hostId: req.hostId.trim(),
          proof: proofOf(call),
          seq: req.seq,
          facts: req.facts ? hostFactsFromProto(req.facts) : undefined,
          environments: req.environments.map(observedFromProto),
          events: req.events.map((e) => eventFromProto(e, now)),
          runtimeError: req.runtimeUnavailable ? req.runtimeError.trim() || 'container runtime unavailable' : undefined,
          // Dated on this controller's clock: no clock difference between hosts counts.
          takenAt: req.ageMs === undefined ? undefined : new Date(now.getTime() - req.ageMs),
        });
        return { reportIntervalMs: deps.reportIntervalMs };
      });
    },
    renewCertificate(call: ServerUnaryCall<RenewCertificateRequest, RenewCertificateResponse>, callback: sendUnaryData<RenewCertificateResponse>) {
      void answer(log, 'RenewCertificate', callback, async () => {
        const res = await deps.registry.renew({ hostId: call.request.hostId.trim(), proof: proofOf(call), csrPem: call.request.csrPem });
        return { certificatePem: res.certificatePem, caPem: res.caPem };
      });
    },
  };
}

function proofOf(call: ServerUnaryCall<unknown, unknown>): HostProof {
  return { peer: peerOf(call), bearer: bearerFromMetadata(call.metadata) };
}

/** answer, with the call's duration and outcome (ok, or the error code) recorded. */
async function answerTimed<T>(log: Logger, method: string, callback: sendUnaryData<T>, run: () => Promise<T>, metrics: ControllerMetrics | undefined): Promise<void> {
  const started = performance.now();
  let code = 'ok';
  await answer(log, method, callback, () =>
    run().catch((err: unknown) => {
      code = err instanceof AppError ? err.code : isDatabaseUnavailable(err) ? 'service_unavailable' : 'internal';
      throw err;
    }),
  );
  metrics?.controlPlaneCall(method, code, (performance.now() - started) / 1000);
}

async function answer<T>(log: Logger, method: string, callback: sendUnaryData<T>, run: () => Promise<T>): Promise<void> {
  try {
    callback(null, await run());
  } catch (err) {
    if (err instanceof AppError) {
      log.info({ method, code: err.code, reason: err.message }, 'agent call refused');
    } else if (isDatabaseUnavailable(err)) {
      // An outage, not a bug: UNAVAILABLE, which agents retry.
      log.warn({ method, reason: err instanceof Error ? err.message : String(err) }, 'database unavailable during a ControlPlane call');
      callback(toGrpcError(new AppError('service_unavailable', "the controller's database is unavailable; retry shortly")));
      return;
    } else {
      log.error({ err, method }, 'internal error in a ControlPlane call');
    }
    callback(toGrpcError(err));
  }
}
