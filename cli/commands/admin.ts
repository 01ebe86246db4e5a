import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { command } from '../command.js';
import { registerAdminHosts } from './admin-hosts.js';
import { registerAdminUsers } from './admin-users.js';

/** `remotegpu admin …`: hosts, users and their tokens (an admin's token only; others get exit 3). */
export function registerAdmin(program: Command, cli: Cli): void {
  const admin = command(program, 'admin', 'administer the platform: hosts, users and API tokens (admins only)').addHelpText(
    'after',
    `
Every admin command needs an admin's token; anyone else gets exit code 3 and the API's message.

Examples:
  remotegpu admin hosts
  remotegpu admin host cordon gpu-01
  remotegpu admin users create alice
  TOKEN=$(remotegpu admin tokens create alice --name laptop)`,
  );
  registerAdminHosts(admin, cli);
  registerAdminUsers(admin, cli);
}
