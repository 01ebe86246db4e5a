import type { AppError } from '../../common/errors.js';
import type { AgentExec } from '../hosts/types.js';
import type { FollowCaller } from './log-follows.js';

/** Close codes of the terminal WebSocket (README, "Terminal"). */
export const CLOSE = {
  normal: 1000,
  internal: 1011,
  revoked: 4401,
  idle: 4408,
  notRunning: 4409,
  tooMany: 4429,
  agentUnreachable: 4502,
} as const;

/** Input kept while the agent's stream opens above which the client is no longer read until it is open. */
const EARLY_INPUT_BYTES = 64 * 1024;

/** The client's end of a terminal (the WebSocket), as a session drives it. */
export interface TerminalPeer {
  /** Sends output; `sent` is called once the bytes left this process (written to the socket). */
  sendOutput(data: Buffer, sent: () => void): void;
  /** Sends a JSON control message. */
  sendControl(message: object): void;
  /** Closes the connection with a WebSocket close code and reason. Idempotent. */
  close(code: number, reason: string): void;
  /** Stops reading what the client sends (the agent has not taken the last input yet). */
  pauseInput(): void;
  resumeInput(): void;
}

/** What a session reports to its registry. */
export interface SessionOwner {
  /** The session ended; `reason` is what the environment's event says. Called once. */
  ended(session: TerminalSession, reason: string): void;
  /** Whether the environment still runs (asked when the shell exits or the stream fails, to tell a stop from an exit). */
  stillRunning(envId: string): Promise<boolean>;
}

/**
 * One open terminal: the bridge between a client and an agent's Exec stream. Output is sent as it
 * comes; while more than `highWaterBytes` of it wait in this process (a client that does not read),
 * the agent's stream is paused until they drop below a quarter of that, so memory stays bounded and
 * the pause reaches the container's pty. In ack mode (`?flow=ack`, the console's browsers, which
 * cannot stop reading a WebSocket) output counts as waiting until the client acknowledges it
 * ({"type":"ack","bytes":N} once its terminal has processed N bytes), so the same pause applies to
 * unacknowledged output and a slow renderer slows the program down instead of piling output up.
 */
export class TerminalSession {
  /** Last input or output (for the idle timeout). */
  lastActivityAt = Date.now();
  /** Output bytes handed to the socket and not yet written (in ack mode: not yet acknowledged), now and at most. */
  queuedBytes = 0;
  maxQueuedBytes = 0;
  /** Whether the agent's stream is paused for the client (too much output waiting). */
  paused = false;
  private exec: AgentExec | undefined;
  /** Input and the last resize the client sent before the agent's stream was attached. */
  private early: { input: Buffer[]; bytes: number; size?: { cols: number; rows: number } } | undefined = { input: [], bytes: 0 };
  private over = false;

  constructor(
    public caller: FollowCaller,
    readonly envId: string,
    private readonly peer: TerminalPeer,
    private readonly owner: SessionOwner,
    private readonly highWaterBytes: number,
    /** Output counts as waiting until the client acknowledges it (`ack`), not just until it is written. */
    readonly ackMode = false,
  ) {}

  get ended(): boolean {
    return this.over;
  }

  /** Bridges the agent's terminal once open (see TerminalSessions.open). */
  attach(exec: AgentExec): void {
    if (this.over) return exec.close();
    this.exec = exec;
    const early = this.early;
    this.early = undefined;
    if (!early) return;
    if (early.size) exec.resize(early.size.cols, early.size.rows);
    let accepted = true;
    for (const data of early.input) accepted = exec.write(data);
    // Input paused while the stream opened resumes now, or once the agent took what was kept.
    if (accepted && early.bytes > EARLY_INPUT_BYTES) this.peer.resumeInput();
  }

  /** Output from the agent. */
  output(data: Buffer): void {
    if (this.over) return;
    this.lastActivityAt = Date.now();
    this.queuedBytes += data.length;
    this.maxQueuedBytes = Math.max(this.maxQueuedBytes, this.queuedBytes);
    this.peer.sendOutput(data, () => {
      if (!this.ackMode) this.release(data.length);
    });
    if (!this.paused && this.queuedBytes > this.highWaterBytes) {
      this.paused = true;
      this.exec?.pause();
    }
  }

  /** The client processed `bytes` more output (ack mode; ignored otherwise, and never below zero). */
  ack(bytes: number): void {
    if (this.over || !this.ackMode) return;
    this.lastActivityAt = Date.now();
    this.release(Math.min(bytes, this.queuedBytes));
  }

  private release(bytes: number): void {
    this.queuedBytes -= bytes;
    if (this.paused && this.queuedBytes <= this.highWaterBytes / 4) {
      this.paused = false;
      this.exec?.resume();
    }
  }

  /** Bytes typed by the client. */
  input(data: Buffer): void {
    if (this.over) return;
    this.lastActivityAt = Date.now();
    if (this.early) {
      // The agent's stream is not open yet: keep the input (a script's first command) for it.
      this.early.input.push(data);
      this.early.bytes += data.length;
      if (this.early.bytes > EARLY_INPUT_BYTES) this.peer.pauseInput();
    } else if (this.exec && !this.exec.write(data)) this.peer.pauseInput();
  }

  /** The agent took the input it had buffered. */
  drained(): void {
    this.peer.resumeInput();
  }

  resize(cols: number, rows: number): void {
    if (this.over) return;
    if (this.early) this.early.size = { cols, rows };
    else this.exec?.resize(cols, rows);
  }

  /** The shell exited: `exit` message then a normal close, unless the environment was stopped meanwhile. */
  async exited(code: number): Promise<void> {
    if (this.over) return;
    if (!(await this.running())) return this.end(CLOSE.notRunning, 'environment is not running');
    this.peer.sendControl({ type: 'exit', code });
    this.finish(CLOSE.normal, 'exited', `exit code ${code}`);
  }

  /** The agent's stream failed. */
  async failed(err: AppError): Promise<void> {
    if (this.over) return;
    if (!(await this.running()) || err.code === 'not_found') return this.end(CLOSE.notRunning, 'environment is not running');
    if (err.code === 'unavailable') return this.end(CLOSE.agentUnreachable, 'agent unreachable');
    this.end(CLOSE.internal, 'internal error');
  }

  /** The platform ends the session (close code and reason text sent to the client). Idempotent. */
  end(code: number, reason: string): void {
    this.finish(code, reason, reason);
  }

  /** The client closed the connection. */
  clientClosed(): void {
    this.finish(undefined, '', 'client disconnected');
  }

  private finish(code: number | undefined, reason: string, eventReason: string): void {
    if (this.over) return;
    this.over = true;
    this.early = undefined;
    this.exec?.close();
    if (code !== undefined) this.peer.close(code, reason);
    this.owner.ended(this, eventReason);
  }

  private async running(): Promise<boolean> {
    return this.owner.stillRunning(this.envId).catch(() => true);
  }
}
