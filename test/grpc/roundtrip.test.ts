import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server, ServerCredentials, credentials, status, type ServiceError } from '@grpc/grpc-js';
import {
  AgentServiceClient,
  AgentServiceService,
  LogStream,
  type AgentServiceServer,
  type ExecOutput,
  type LogLine,
} from '../../gen/remotegpu/v1/agent.js';
import { ControlPlaneClient, ControlPlaneService, type ControlPlaneServer } from '../../gen/remotegpu/v1/control_plane.js';
import { DesiredState, GpuHealth, ObservedState } from '../../gen/remotegpu/v1/types.js';
import { bearerFromMetadata, bearerMetadata, toGrpcError } from '../../common/grpc.js';
import { AppError } from '../../common/errors.js';

// Every RPC kind of the contract over real gRPC on loopback: unary (both services), server
// streaming (StreamLogs, including cancellation) and bidirectional (Exec).

const SECRET = 'host-credential-0123456789';
let server: Server;
let address: string;
let logStreamCancelled: Promise<void>;
let resolveCancelled: () => void;

const agent: AgentServiceServer = {
  applyEnvironment(call, cb) {
    if (bearerFromMetadata(call.metadata) !== SECRET) {
      cb(toGrpcError(new AppError('unauthenticated', 'bad host credential')));
      return;
    }
    const spec = call.request.spec!;
    cb(null, {
      action: 'created',
      status: {
        envId: spec.envId,
        state: spec.desiredState === DesiredState.DESIRED_STATE_RUNNING ? ObservedState.OBSERVED_STATE_RUNNING : ObservedState.OBSERVED_STATE_CREATED,
        containerId: 'c1',
        specHash: 'h',
        gpuUuids: spec.gpuUuids,
        exitCode: 0,
        oomKilled: false,
        startedAtMs: 1,
        finishedAtMs: 0,
        message: '',
        sshReady: false,
        sshHostKeys: [],
      },
    });
  },
  stopEnvironment(call, cb) {
    cb(null, { status: undefined });
  },
  removeEnvironment(call, cb) {
    cb(null, { removed: call.request.envId === 'env-1' });
  },
  inspectEnvironment(call, cb) {
    cb(toGrpcError(new AppError('not_found', `no environment ${call.request.envId}`)));
  },
  streamLogs(call) {
    for (let i = 0; i < call.request.tailLines; i++) {
      call.write({ atMs: 1000 + i, stream: LogStream.LOG_STREAM_STDOUT, text: `line ${i}`, continued: false });
    }
    if (!call.request.follow) {
      call.end();
      return;
    }
    const timer = setInterval(() => call.write({ atMs: Date.now(), stream: LogStream.LOG_STREAM_STDERR, text: 'tick', continued: false }), 10);
    call.on('cancelled', () => {
      clearInterval(timer);
      resolveCancelled();
    });
  },
  exec(call) {
    let started = false;
    call.on('data', (msg: { input?: { $case: string; value: unknown } }) => {
      const input = msg.input;
      if (input?.$case === 'start') {
        started = true;
        call.write({ output: { $case: 'data', value: Buffer.from('$ ') } });
      } else if (input?.$case === 'stdin' && started) {
        call.write({ output: { $case: 'data', value: Buffer.from(`echo:${Buffer.from(input.value as Uint8Array).toString()}`) } });
      } else if (input?.$case === 'resize') {
        const r = input.value as { cols: number; rows: number };
        call.write({ output: { $case: 'data', value: Buffer.from(`size:${r.cols}x${r.rows}`) } });
      }
    });
    call.on('end', () => {
      call.write({ output: { $case: 'exitCode', value: 7 } });
      call.end();
    });
  },
};

const controlPlane: ControlPlaneServer = {
  register(call, cb) {
    cb(null, { hostId: 'host-1', hostCredential: SECRET, reportIntervalMs: 5000, certificatePem: '', caPem: '', pendingApproval: false });
  },
  reportStatus(call, cb) {
    cb(null, { reportIntervalMs: call.request.environments.length * 1000 });
  },
  renewCertificate(call, cb) {
    cb(null, { certificatePem: `cert for ${call.request.hostId}`, caPem: '' });
  },
};

beforeAll(async () => {
  logStreamCancelled = new Promise((resolve) => (resolveCancelled = resolve));
  server = new Server();
  server.addService(AgentServiceService, agent);
  server.addService(ControlPlaneService, controlPlane);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(() => server.forceShutdown());

describe('gRPC contract over loopback', () => {
  it('unary: ControlPlane.Register and ReportStatus', async () => {
    const client = new ControlPlaneClient(address, credentials.createInsecure());
    const reg = await new Promise<{ hostId: string; hostCredential: string }>((resolve, reject) =>
      client.register(
        {
          joinToken: 'join',
          csrPem: '',
          facts: {
            hostname: 'gpu-1',
            publicAddress: '10.0.0.1',
            agentAddress: '10.0.0.1:9091',
            agentVersion: '0.1.0',
            os: 'Debian',
            kernel: '6.1',
            cpuModel: 'EPYC',
            cpuCores: 64,
            memoryBytes: 2 ** 40,
            diskTotalBytes: 2 ** 42,
            diskFreeBytes: 2 ** 41,
            gpus: [
              {
                index: 0,
                uuid: 'GPU-abc',
                model: 'NVIDIA H100 80GB HBM3',
                memoryBytes: 85520809984,
                memoryUsedBytes: 0,
                utilizationPercent: -1,
                temperatureC: 30,
                pciBusId: '00000000:18:00.0',
                driverVersion: '535.104.05',
                cudaVersion: '12.2',
                health: GpuHealth.GPU_HEALTH_HEALTHY,
                healthReason: '',
                migEnabled: false,
              },
            ],
            gpuCondition: '',
            driverVersion: '535.104.05',
            cudaVersion: '12.2',
            gpuMode: 'devices',
            busyPorts: [],
          },
        },
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
    expect(reg).toMatchObject({ hostId: 'host-1', hostCredential: SECRET });
    const rep = await new Promise<{ reportIntervalMs: number }>((resolve, reject) =>
      client.reportStatus(
        { hostId: 'host-1', facts: undefined, environments: [{ envId: 'e', state: 3, containerId: '', specHash: '', gpuUuids: [], exitCode: 0, oomKilled: false, startedAtMs: 0, finishedAtMs: 0, message: '', sshReady: true, sshHostKeys: [] }], events: [], seq: 1, runtimeUnavailable: false, runtimeError: '' },
        bearerMetadata(SECRET),
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
    expect(rep.reportIntervalMs).toBe(1000);
    client.close();
  });

  it('unary: AgentService calls carry the credential and map errors to gRPC statuses', async () => {
    const client = new AgentServiceClient(address, credentials.createInsecure());
    const spec = {
      envId: 'env-1',
      image: 'img',
      cpuCores: 2,
      memoryBytes: 2 ** 32,
      gpuUuids: ['GPU-a', 'GPU-b'],
      storageBytes: 2 ** 30,
      dataPath: '/root/workspace',
      ports: [{ name: 'ssh', containerPort: 22, hostPort: 30001 }],
      sshAuthorizedKeys: ['ssh-ed25519 AAAA test'],
      mounts: [{ datasetId: '7', hostPath: '/srv/data', containerPath: '/data/x', readonly: true }],
      env: { A: 'b' },
      labels: { team: 'ml' },
      jupyterToken: 'tok',
      desiredState: DesiredState.DESIRED_STATE_RUNNING,
      shmBytes: 0,
      pidsLimit: 0,
    };
    const ok = await new Promise<{ action: string; status?: { gpuUuids: string[]; state: number } }>((resolve, reject) =>
      client.applyEnvironment({ spec }, bearerMetadata(SECRET), (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(ok.action).toBe('created');
    expect(ok.status?.gpuUuids).toEqual(['GPU-a', 'GPU-b']);
    expect(ok.status?.state).toBe(ObservedState.OBSERVED_STATE_RUNNING);

    const denied = await new Promise<ServiceError>((resolve) =>
      client.applyEnvironment({ spec }, bearerMetadata('wrong'), (err) => resolve(err!)),
    );
    expect(denied.code).toBe(status.UNAUTHENTICATED);

    const removed = await new Promise<{ removed: boolean }>((resolve, reject) =>
      client.removeEnvironment({ envId: 'env-1' }, bearerMetadata(SECRET), (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(removed.removed).toBe(true);

    const stopped = await new Promise<object>((resolve, reject) =>
      client.stopEnvironment({ envId: 'env-1', timeoutS: 1 }, bearerMetadata(SECRET), (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(stopped).toEqual({ status: undefined });

    const missing = await new Promise<ServiceError>((resolve) =>
      client.inspectEnvironment({ envId: 'env-9' }, bearerMetadata(SECRET), (err) => resolve(err!)),
    );
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.details).toBe('no environment env-9');
    client.close();
  });

  it('server streaming: StreamLogs sends the tail, follows, and sees the client cancel', async () => {
    const client = new AgentServiceClient(address, credentials.createInsecure());
    const tail: LogLine[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.streamLogs({ envId: 'env-1', tailLines: 3, follow: false }, bearerMetadata(SECRET));
      call.on('data', (line: LogLine) => tail.push(line));
      call.on('end', resolve);
      call.on('error', reject);
    });
    expect(tail.map((l) => l.text)).toEqual(['line 0', 'line 1', 'line 2']);

    const followed: LogLine[] = [];
    const call = client.streamLogs({ envId: 'env-1', tailLines: 0, follow: true }, bearerMetadata(SECRET));
    call.on('error', () => {});
    await new Promise<void>((resolve) =>
      call.on('data', (line: LogLine) => {
        followed.push(line);
        if (followed.length === 3) resolve();
      }),
    );
    call.cancel();
    await logStreamCancelled;
    expect(followed.every((l) => l.text === 'tick' && l.stream === LogStream.LOG_STREAM_STDERR)).toBe(true);
    client.close();
  });

  it('bidirectional: Exec carries stdin, resize and the exit code', async () => {
    const client = new AgentServiceClient(address, credentials.createInsecure());
    const call = client.exec(bearerMetadata(SECRET));
    const out: ExecOutput[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (msg: ExecOutput) => out.push(msg));
      call.on('end', resolve);
      call.on('error', reject);
    });
    call.write({ input: { $case: 'start', value: { envId: 'env-1', command: [], cols: 80, rows: 24 } } });
    call.write({ input: { $case: 'stdin', value: Buffer.from('ls') } });
    call.write({ input: { $case: 'resize', value: { cols: 120, rows: 40 } } });
    call.end();
    await done;
    const texts = out.flatMap((m) => (m.output?.$case === 'data' ? [Buffer.from(m.output.value).toString()] : []));
    expect(texts).toEqual(['$ ', 'echo:ls', 'size:120x40']);
    expect(out.at(-1)?.output).toEqual({ $case: 'exitCode', value: 7 });
    client.close();
  });
});
