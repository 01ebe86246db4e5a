import { hostForPort } from '../../common/format.js';

/** What `EnvironmentAccess` needs of an environment row (with its host's address). */
export interface ReachableEnvironment {
  readonly public_address: string | null;
  readonly ssh_port: number | null;
  readonly jupyter_port: number | null;
  readonly jupyter_token: string;
}

/** How users reach an environment made from a catalog image: the ssh command and the Jupyter URL. */
export class EnvironmentAccess {
  /** `jupyterUrlTemplate`: REMOTEGPU_JUPYTER_URL_TEMPLATE, with {address}, {port} and {token}. */
  constructor(private readonly jupyterUrlTemplate: string) {}

  /** The ssh command and Jupyter URL (null without Jupyter), or null until the environment is placed. */
  of(env: ReachableEnvironment): { ssh: string; jupyter: string | null } | null {
    const address = env.public_address;
    if (!address || env.ssh_port === null) return null;
    return {
      ssh: `ssh root@${address} -p ${env.ssh_port}`,
      jupyter:
        env.jupyter_port !== null
          ? this.jupyterUrlTemplate
              .replaceAll('{address}', hostForPort(address))
              .replaceAll('{port}', String(env.jupyter_port))
              .replaceAll('{token}', env.jupyter_token)
          : null,
    };
  }
}
