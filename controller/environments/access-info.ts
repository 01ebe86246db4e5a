import { hostForPort } from '../../common/format.js';
import { hostKeysWithFingerprints } from './host-keys.js';

/** What `EnvironmentAccess` needs of an environment row (with its host's address). */
export interface ReachableEnvironment {
  readonly public_address: string | null;
  readonly ssh_port: number | null;
  readonly jupyter_port: number | null;
  readonly jupyter_token: string;
  /** The stored host keys of its current container (environments.ssh_host_keys). */
  readonly ssh_host_keys: unknown;
}

/** One SSH host public key of an environment's sshd (as in known_hosts: `type key`). */
export interface SshHostKey {
  /** Key type, e.g. `ssh-ed25519`. */
  readonly type: string;
  /** Base64 public key blob. */
  readonly key: string;
  /** `SHA256:` and the unpadded base64 SHA-256 of the blob, as `ssh-keygen -l` prints it. */
  readonly fingerprint: string;
}

/** How a user reaches an environment. */
export interface AccessInfo {
  readonly ssh: string;
  readonly ssh_user: string;
  readonly ssh_host: string;
  readonly ssh_host_keys: SshHostKey[];
  readonly jupyter: string | null;
}

/** How users reach an environment made from a catalog image: the ssh command and the Jupyter URL. */
export class EnvironmentAccess {
  /** `jupyterUrlTemplate`: REMOTEGPU_JUPYTER_URL_TEMPLATE, with {address}, {port} and {token}. */
  constructor(private readonly jupyterUrlTemplate: string) {}

  /** The ssh command and Jupyter URL (null without Jupyter), or null until the environment is placed. */
  of(env: ReachableEnvironment): AccessInfo | null {
    const address = env.public_address;
    if (!address || env.ssh_port === null) return null;
    return {
      ssh: `ssh root@${address} -p ${env.ssh_port}`,
      ssh_user: 'root',
      ssh_host: address,
      ssh_host_keys: hostKeysWithFingerprints(env.ssh_host_keys),
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
