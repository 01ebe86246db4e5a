import type { ContainerInspectInfo } from 'dockerode';
import { LABEL } from './docker-names.js';
import type { ObservedState, ObservedStatus } from './types.js';

/** The status of an environment without a container. */
export function absentStatus(envId: string, message = ''): ObservedStatus {
  return {
    envId,
    state: 'absent',
    containerId: '',
    specHash: '',
    gpuUuids: [],
    exitCode: 0,
    oomKilled: false,
    startedAtMs: 0,
    finishedAtMs: 0,
    message,
  };
}

/** Docker's RFC 3339 time (nanoseconds allowed) in ms since the epoch; Docker's zero time gives 0. */
export function parseDockerTime(text: string | undefined): number {
  if (!text || text.startsWith('0001-01-01')) return 0;
  // Date.parse wants at most millisecond digits.
  const ms = Date.parse(text.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

function observedState(state: ContainerInspectInfo['State']): ObservedState {
  if (state.Restarting) return 'restarting';
  switch (state.Status) {
    case 'created':
      return 'created';
    case 'running':
      return 'running';
    case 'paused':
      return 'paused';
    case 'restarting':
      return 'restarting';
    case 'exited':
    case 'removing':
      return 'exited';
    default:
      return 'failed';
  }
}

/** Maps `docker inspect` of a managed container to the domain status. Pure. */
export function statusFromInspect(envId: string, info: ContainerInspectInfo): ObservedStatus {
  const labels = info.Config.Labels ?? {};
  const state = observedState(info.State);
  const gpus = labels[LABEL.gpuUuids] ?? '';
  let message = info.State.Error ?? '';
  if (!message && info.State.OOMKilled) message = 'OOM killed: the memory limit was reached';
  else if (!message && state === 'exited') message = `exited with code ${info.State.ExitCode}`;
  return {
    envId,
    state,
    containerId: info.Id,
    specHash: labels[LABEL.specHash] ?? '',
    gpuUuids: gpus ? gpus.split(',') : [],
    exitCode: info.State.ExitCode ?? 0,
    oomKilled: info.State.OOMKilled === true,
    startedAtMs: parseDockerTime(info.State.StartedAt),
    finishedAtMs: parseDockerTime(info.State.FinishedAt),
    message,
  };
}
