import { WebSocket } from 'ws';
import { waitUntil } from './rest.js';

/** Why a terminal WebSocket did not open: the HTTP status the controller answered the upgrade with. */
export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused with HTTP ${status}`);
  }
}

/**
 * A terminal client over a real WebSocket (the `ws` package), speaking the protocol of
 * GET /api/v1/environments/{env_id}/terminal: binary frames both ways, JSON text control messages.
 */
export class TerminalClient {
  /** Everything printed so far (decoded as UTF-8; `keep` trims it). */
  output = '';
  bytes = 0;
  exitCode: number | undefined;
  closeCode: number | undefined;
  closeReason = '';
  private readonly decoder = new TextDecoder();

  private constructor(
    readonly ws: WebSocket,
    private readonly keep: (text: string) => string,
  ) {
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
      if (isBinary) {
        this.bytes += buf.length;
        this.output = this.keep(this.output + this.decoder.decode(buf, { stream: true }));
      } else {
        const msg = JSON.parse(buf.toString('utf8')) as { type: string; code: number };
        if (msg.type === 'exit') this.exitCode = msg.code;
      }
    });
    ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
    });
  }

  /** Opens `url` (ws://…/terminal?…); rejects with UpgradeRefused when the controller answers with a status. */
  static open(url: string, options: { headers?: Record<string, string>; keep?: (text: string) => string } = {}): Promise<TerminalClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: options.headers ?? {} });
      const client = new TerminalClient(ws, options.keep ?? ((t) => t.slice(-64 * 1024)));
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => {
        reject(new UpgradeRefused(res.statusCode ?? 0));
        ws.terminate();
      });
      ws.once('error', (err) => reject(err));
    });
  }

  /** Sends typed text as stdin (a binary frame). */
  type(text: string): void {
    this.ws.send(Buffer.from(text, 'utf8'), { binary: true });
  }

  /** Acknowledges `bytes` of processed output (with ?flow=ack). */
  ack(bytes: number): void {
    this.ws.send(JSON.stringify({ type: 'ack', bytes }));
  }

  resize(cols: number, rows: number): void {
    this.ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  }

  /** Waits until the output matches `pattern` (from `since` on); returns the match. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000, since = 0): Promise<RegExpMatchArray> {
    let match: RegExpMatchArray | null = null;
    await waitUntil(`terminal output ${pattern}`, () => (match = this.output.slice(since).match(pattern)) !== null || this.closeCode !== undefined, timeoutMs, () => `output: ${JSON.stringify(this.output.slice(-500))}`, 20);
    if (!match) throw new Error(`terminal closed (${this.closeCode} ${this.closeReason}) before ${pattern}; output: ${JSON.stringify(this.output.slice(-500))}`);
    return match;
  }

  /** Waits for the close; returns its code and reason. */
  async closed(timeoutMs = 30_000): Promise<{ code: number; reason: string }> {
    await waitUntil('terminal closed', () => this.closeCode !== undefined, timeoutMs, () => `output: ${JSON.stringify(this.output.slice(-300))}`, 20);
    return { code: this.closeCode!, reason: this.closeReason };
  }

  close(): void {
    this.ws.close();
  }
}

/** The status an upgrade was refused with, or 101 when it opened (then the socket is closed). */
export async function upgradeStatus(url: string, headers?: Record<string, string>): Promise<number> {
  try {
    const client = await TerminalClient.open(url, headers ? { headers } : {});
    client.close();
    return 101;
  } catch (err) {
    if (err instanceof UpgradeRefused) return err.status;
    throw err;
  }
}
