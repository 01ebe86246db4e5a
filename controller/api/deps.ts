import type { Logger } from '../../common/logger.js';
import type { Principal } from '../access/principal.js';
import type { ControllerServices } from '../services.js';

/** What every route module is built from: the services (never the database) and the logger. */
export interface ApiDeps {
  readonly services: ControllerServices;
  readonly logger: Logger;
}

/** The API's Hono environment: `principal` is the caller, set by the auth middleware (auth.ts). */
export type AppEnv = { Variables: { principal: Principal } };
