import type { UserRole } from '../db/schema.js';

/** Who is calling: the user behind a valid API token. Every service method takes one. */
export interface Principal {
  readonly userId: number;
  readonly name: string;
  readonly role: UserRole;
}
