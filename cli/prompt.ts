import type { Io } from './cli.js';

/**
 * Reads a secret: from a prompt on a terminal, without echoing it; otherwise the whole of stdin
 * (`echo "$TOKEN" | remotegpu login ...`). The secret is never written anywhere by this function.
 */
export async function readSecret(io: Io, prompt: string): Promise<string> {
  const stdin = io.stdin as NodeJS.ReadStream;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  io.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  let text = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (data: Buffer) => {
        for (const ch of data.toString('utf8')) {
          if (ch === '\r' || ch === '\n') return finish(resolve);
          if (ch === '\u0003') return finish(() => reject(Object.assign(new Error('interrupted'), { code: 'EINTR' })));
          if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
          else text += ch;
        }
      };
      const finish = (then: () => void) => {
        stdin.off('data', onData);
        then();
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    io.stderr.write('\n');
  }
  return text;
}
