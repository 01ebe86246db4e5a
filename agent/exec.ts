import { spawn, type IPty } from 'node-pty';

/** A terminal session: a process under a pseudo-terminal. */
export interface TerminalSession {
  write(data: Uint8Array | string): void;
  resize(cols: number, rows: number): void;
  /** Ends the session (SIGHUP to the process group, as when a terminal closes). */
  kill(): void;
  /** Stops reading the terminal's output (the process blocks once the pty's buffer is full); idempotent. */
  pause(): void;
  /** Reads the terminal's output again after pause; idempotent. */
  resume(): void;
  onData(listener: (data: Buffer) => void): void;
  onExit(listener: (exitCode: number) => void): void;
}

const clamp = (n: number, fallback: number) => (Number.isInteger(n) && n > 0 && n <= 1000 ? n : fallback);

/**
 * Starts `argv` (e.g. a `docker exec -it` command line from ContainerRuntime.execArgs) under a
 * pseudo-terminal of the given size. The process gets PATH and DOCKER_HOST from `processEnv` (the
 * agent's own environment, AgentConfig.processEnv) and nothing else of it.
 */
export function openTerminal(argv: readonly string[], size: { cols: number; rows: number }, processEnv: NodeJS.ProcessEnv): TerminalSession {
  const [file, ...args] = argv;
  if (!file) throw new Error('empty command');
  const pty: IPty = spawn(file, args, {
    name: 'xterm-256color',
    cols: clamp(size.cols, 80),
    rows: clamp(size.rows, 24),
    env: {
      PATH: processEnv.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      TERM: 'xterm-256color',
      ...(processEnv.DOCKER_HOST ? { DOCKER_HOST: processEnv.DOCKER_HOST } : {}),
    },
    encoding: null,
  });
  return {
    write: (data) => pty.write(typeof data === 'string' ? data : Buffer.from(data)),
    resize: (cols, rows) => pty.resize(clamp(cols, 80), clamp(rows, 24)),
    kill: () => {
      try {
        pty.kill('SIGHUP');
      } catch {
        // already gone
      }
    },
    pause: () => pty.pause(),
    resume: () => pty.resume(),
    onData: (listener) => {
      pty.onData((d: string | Buffer) => listener(typeof d === 'string' ? Buffer.from(d) : d));
    },
    onExit: (listener) => {
      pty.onExit(({ exitCode }) => listener(exitCode));
    },
  };
}
