import { status as GrpcStatus, type ClientDuplexStream, type Metadata, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import type { AgentServiceClient, ExecInput, ExecOutput } from '../../gen/remotegpu/v1/agent.js';
import { AppError } from '../../common/errors.js';
import type { AgentExec, AgentExecHandlers } from './types.js';

/**
 * Opens the agent's Exec stream for `envId` (a login shell) and reports through `handlers`: output,
 * then exactly one of the exit code or an error (mapped by `mapError`), unless `close` came first.
 * Pausing stops reading the stream, which holds the agent's writes (HTTP/2 flow control) and so its pty.
 */
export function openAgentExec(
  client: AgentServiceClient,
  metadata: Metadata,
  envId: string,
  size: { cols: number; rows: number },
  handlers: AgentExecHandlers,
  mapError: (err: unknown) => AppError,
): AgentExec {
  const call: ClientDuplexStream<ExecInput, ExecOutput> = client.exec(metadata);
  let done = false;
  const finish = (report: () => void) => {
    if (done) return;
    done = true;
    report();
  };
  call.on('data', (msg: ExecOutput) => {
    const out = msg.output;
    if (out?.$case === 'data') {
      if (!done) handlers.onData(Buffer.from(out.value));
    } else if (out?.$case === 'exitCode') finish(() => handlers.onExit(out.value));
  });
  // An error status: the call failed (our own cancel is CANCELLED, after `done` was set).
  call.on('error', (err: ServiceError) => finish(() => handlers.onError(mapError(err))));
  call.on('status', (s: StatusObject) => {
    if (s.code !== GrpcStatus.OK) finish(() => handlers.onError(mapError(Object.assign(new Error(s.details), s))));
  });
  // Everything read and no exit code: the agent ended the stream without saying how the shell ended.
  call.on('end', () => finish(() => handlers.onError(new AppError('unavailable', `the agent ended the terminal of ${envId} without an exit code`))));
  call.on('drain', () => handlers.onDrain());
  call.write({ input: { $case: 'start', value: { envId, command: [], cols: size.cols, rows: size.rows } } });
  return {
    write: (data) => (done ? true : call.write({ input: { $case: 'stdin', value: Buffer.from(data.buffer, data.byteOffset, data.byteLength) } })),
    resize: (cols, rows) => {
      if (!done) call.write({ input: { $case: 'resize', value: { cols, rows } } });
    },
    pause: () => call.pause(),
    resume: () => call.resume(),
    close: () => {
      done = true;
      call.cancel();
    },
  };
}
