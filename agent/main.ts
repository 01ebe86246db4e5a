#!/usr/bin/env node
import { ConfigError } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { agentDataDir, loadAgentConfig, type AgentConfig } from './config.js';
import { startAgent } from './agent.js';
import { resetIdentity } from './reset.js';

// remotegpu-agent: the daemon on every GPU server. `remotegpu-agent reset` forgets the host's
// identity (the next start registers anew).

const command = process.argv[2];
if (command === 'reset') {
  process.exit(await resetIdentity(agentDataDir(), (line) => process.stdout.write(`${line}\n`)));
} else if (command !== undefined) {
  process.stderr.write(`remotegpu-agent: unknown command ${JSON.stringify(command)} (without a command it runs the agent; \`remotegpu-agent reset\` forgets this host's identity)\n`);
  process.exit(2);
}

let config: AgentConfig;
try {
  config = loadAgentConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`remotegpu-agent: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const logger = createLogger({ name: 'agent', level: config.logLevel });
try {
  const agent = await startAgent(config, logger);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping; containers keep running');
    void agent.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
} catch (err) {
  process.stderr.write(`remotegpu-agent: ${err instanceof Error ? err.message : String(err)}\n`);
  if (err instanceof ConfigError) process.exit(2);
  logger.error({ err }, 'agent failed to start');
  process.exit(1);
}
