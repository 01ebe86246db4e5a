import { describe, expect, it } from 'vitest';
import { agentReason, redactHostPaths, type RedactionContext } from '../../../controller/environments/redact.js';

// Docker's and the agent's error texts as users see them: no host path, a mounted dataset named,
// their own container paths kept.

const context: RedactionContext = {
  datasets: [
    { name: 'imagenet', hostPath: '/mnt/datasets/imagenet' },
    { name: 'coco', hostPath: '/mnt/datasets/coco/' },
  ],
  containerPaths: ['/data/imagenet', '/root/workspace'],
};

describe('redactHostPaths', () => {
  it.each([
    [
      "Error response from daemon: error while creating mount source path '/mnt/datasets/imagenet': mkdir /mnt/datasets/imagenet: read-only file system",
      "Error response from daemon: error while creating mount source path '<dataset imagenet>': mkdir <dataset imagenet>: read-only file system",
    ],
    [
      'OCI runtime create failed: runc create failed: error mounting "/var/lib/remotegpu/run/views/env-abc/1" to rootfs at "/data/imagenet": no such file or directory',
      'OCI runtime create failed: runc create failed: error mounting "<host path>" to rootfs at "/data/imagenet": no such file or directory',
    ],
    ['stat /mnt/datasets/coco/train/000001.jpg: permission denied', 'stat <dataset coco/train/000001.jpg>: permission denied'],
    ['invalid mount config: bind source path does not exist: /srv/private/secret-project.', 'invalid mount config: bind source path does not exist: <host path>.'],
    ['bind spec /srv/a:/data/imagenet:ro rejected', 'bind spec <host path>:/data/imagenet:ro rejected'],
    ['volume /var/lib/remotegpu/volumes/env-abc.img is full', 'volume <host path> is full'],
  ])('%s', (text, expected) => {
    expect(redactHostPaths(text, context)).toBe(expected);
  });

  it('leaves URLs, image references, relative paths and plain text alone', () => {
    for (const text of [
      'Get "https://registry.example.com:5000/v2/ml/pytorch/manifests/2.0": dial tcp: i/o timeout',
      'pull access denied for registry.example.com/ml/pytorch, repository does not exist',
      'cannot connect to the Docker daemon at unix:///var/run/docker.sock',
      'container exited with code 137',
      'file a/b/c not found; writable layer 10 GiB/20 GiB',
    ]) {
      expect(redactHostPaths(text, context)).toBe(text);
    }
  });

  it('never unmasks a host path under a container path, nor a dataset a user mounted at its own host path', () => {
    const tricky: RedactionContext = { datasets: [{ name: 'ds', hostPath: '/mnt/ds' }], containerPaths: ['/var', '/mnt/ds'] };
    expect(redactHostPaths('mkdir /var/lib/remotegpu/run: denied; stat /mnt/ds: gone; /var ok', tricky)).toBe('mkdir <host path>: denied; stat <dataset ds>: gone; /var ok');
  });

  it('replaces a dataset host path with spaces and brackets whole, not only its start and end', () => {
    const spaced: RedactionContext = {
      datasets: [
        { name: 'team', hostPath: '/mnt/nfs/Project Phoenix (acme)/raw' },
        { name: 'all', hostPath: '/mnt/nfs/Project Phoenix (acme)' },
        { name: 'b', hostPath: '/mnt/b c' },
      ],
      containerPaths: ['/data/team'],
    };
    for (const [text, expected] of [
      ['dataset 7: mounting /mnt/nfs/Project Phoenix (acme)/raw/v2 failed: no such file', 'dataset 7: mounting <dataset team/v2> failed: no such file'],
      ["creating mount source path '/mnt/nfs/Project Phoenix (acme)/raw': denied", "creating mount source path '<dataset team>': denied"],
      ['stat /mnt/nfs/Project Phoenix (acme)/other: gone.', 'stat <dataset all/other>: gone.'],
      ['at /mnt/nfs/Project Phoenix (acme).', 'at <dataset all>.'],
      // Not at a path boundary: not the dataset (the regex pass replaces what looks like a path).
      ['/mnt/b cd and x/mnt/b c', '<host path> cd and x/mnt/b c'],
      ['/mnt/b c/d to /srv/x', '<dataset b/d> to <host path>'],
    ]) {
      expect(redactHostPaths(text!, spaced)).toBe(expected);
    }
  });
});

describe('agentReason', () => {
  it('keeps the full text as the detail only when it differs', () => {
    expect(agentReason('mkdir /srv/x: denied', context)).toEqual({ reason: 'mkdir <host path>: denied', detail: 'mkdir /srv/x: denied' });
    expect(agentReason('container exited with code 1', context)).toEqual({ reason: 'container exited with code 1', detail: '' });
  });
});
