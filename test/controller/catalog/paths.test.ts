import { describe, expect, it } from 'vitest';
import { absolutePathProblem, containerDirProblem, datasetHostPathProblem } from '../../../controller/catalog/paths.js';

describe('path rules', () => {
  it.each(['/', '/data', '/mnt/datasets/imagenet-2012', '/a b/c'])('accepts the absolute, normalized path %j', (path) => {
    expect(absolutePathProblem(path)).toBeUndefined();
  });

  it.each([
    ['data', /absolute/],
    ['./data', /absolute/],
    ['', /absolute/],
    ['/data/', /did you mean "\/data"/],
    ['/data//x', /did you mean "\/data\/x"/],
    ['/data/./x', /did you mean "\/data\/x"/],
    ['/data/../etc', /did you mean "\/etc"/],
    ['/..', /did you mean "\/"/],
    ['/data\nx', /control characters/],
    ['/data:/etc', /":"/],
  ])('refuses %j', (path, problem) => {
    expect(absolutePathProblem(path)).toMatch(problem);
  });

  it('refuses "/" as a container directory', () => {
    expect(containerDirProblem('/')).toMatch(/must not be "\/"/);
    expect(containerDirProblem('/root/workspace')).toBeUndefined();
  });

  it('refuses "/" and system directories as dataset host paths', () => {
    expect(datasetHostPathProblem('/')).toMatch(/must not be "\/"/);
    for (const path of ['/etc', '/etc/ssl', '/proc', '/sys/fs', '/dev', '/boot', '/run/secrets', '/var/run', '/var/lib/docker/volumes']) {
      expect(datasetHostPathProblem(path), path).toMatch(/system directories/);
    }
    for (const path of ['/etcetera', '/data/etc', '/var/lib/data', '/srv/datasets']) {
      expect(datasetHostPathProblem(path), path).toBeUndefined();
    }
  });
});
