// The link that makes an environment's /root/.ssh/authorized_keys the file in its keys directory.

/** Where the container sees the environment's keys directory (read-only bind mount). */
export const KEYS_DIR_TARGET = '/etc/remotegpu/ssh';
/** Where sshd looks for root's keys: a symlink into KEYS_DIR_TARGET. */
export const AUTHORIZED_KEYS_TARGET = '/root/.ssh/authorized_keys';

/**
 * A tar archive (to extract at `/` in the container) holding one entry: the symlink
 * `root/.ssh/authorized_keys` → `/etc/remotegpu/ssh/authorized_keys`, owned by root. Missing
 * parent directories are made by Docker (0755, root); an existing file there is replaced. Pure.
 */
export function keysLinkTar(): Buffer {
  return symlinkTar(AUTHORIZED_KEYS_TARGET.slice(1), `${KEYS_DIR_TARGET}/authorized_keys`);
}

/** A ustar archive with one symbolic link `name` → `target` (both under 100 bytes). Pure. */
export function symlinkTar(name: string, target: string): Buffer {
  if (Buffer.byteLength(name) >= 100 || Buffer.byteLength(target) >= 100) throw new Error('tar: name and target must be under 100 bytes');
  const header = Buffer.alloc(512);
  const field = (offset: number, value: string) => header.write(value, offset, 'utf8');
  field(0, name);
  field(100, '0000777\0'); // mode: links carry none of their own
  field(108, '0000000\0'); // uid
  field(116, '0000000\0'); // gid
  field(124, '00000000000\0'); // size
  field(136, '00000000000\0'); // mtime
  field(148, '        '); // checksum, counted as spaces while it is computed
  field(156, '2'); // type: symbolic link
  field(157, target);
  field(257, 'ustar\0');
  field(263, '00');
  field(265, 'root');
  field(297, 'root');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, `${sum.toString(8).padStart(6, '0')}\0 `);
  // Two zero blocks end the archive.
  return Buffer.concat([header, Buffer.alloc(1024)]);
}
