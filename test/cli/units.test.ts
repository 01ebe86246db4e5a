import { describe, expect, it } from 'vitest';
import { CliError, EXIT } from '../../cli/errors.js';
import { formatBytes, formatDuration, parseBytes, parseCount, parseDuration } from '../../cli/units.js';

// The CLI's human units (issue 14 item 2): what `--memory 16Gi`, `--timeout 10m` mean, and that
// anything else is a usage error (exit 2) naming the option.

const usageError = (run: () => unknown, option: string) => {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.usage);
    expect((err as CliError).message).toContain(option);
    return;
  }
  throw new Error('expected a usage error');
};

describe('parseBytes', () => {
  it.each([
    ['16Gi', 16 * 2 ** 30],
    ['16GiB', 16 * 2 ** 30],
    ['16gi', 16 * 2 ** 30],
    ['512Mi', 512 * 2 ** 20],
    ['1.5Ti', 1.5 * 2 ** 40],
    ['100G', 100e9],
    ['100GB', 100e9],
    ['64M', 64e6],
    ['4096', 4096],
    [' 2 Gi ', 2 * 2 ** 30],
  ])('%s is %d bytes', (text, bytes) => expect(parseBytes(text, '--memory')).toBe(bytes));

  it.each(['16GG', 'Gi', '-1Gi', '0', '0Gi', '1e3', '16 G i', '', '1,5Gi', '99999999999Pi'])('%j is a usage error naming the option', (text) =>
    usageError(() => parseBytes(text, '--memory'), '--memory'),
  );
});

describe('parseDuration', () => {
  it.each([
    ['90s', 90_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
    ['600', 600_000],
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text, '--timeout')).toBe(ms));

  it.each(['10x', 'm', '0', '0s', '-5m', '1.5h', '', '10 m'])('%j is a usage error naming the option', (text) => usageError(() => parseDuration(text, '--timeout'), '--timeout'));
});

describe('parseCount', () => {
  it('takes whole numbers from the minimum up', () => {
    expect(parseCount('0', '--gpu')).toBe(0);
    expect(parseCount('8', '--gpu', 1)).toBe(8);
  });
  it.each([['-1'], ['1.5'], ['two'], ['']])('%j is a usage error', (text) => usageError(() => parseCount(text, '--gpu'), '--gpu'));
  it('refuses below the minimum', () => usageError(() => parseCount('0', '--cpu', 1), '--cpu'));
});

describe('formatBytes', () => {
  it.each([
    [16 * 2 ** 30, '16 GiB'],
    [1.5 * 2 ** 40, '1.5 TiB'],
    [512 * 2 ** 20, '512 MiB'],
    [100e9, '93.1 GiB'],
    [1000, '1000 B'],
    [null, '-'],
  ])('%s is %s', (bytes, text) => expect(formatBytes(bytes)).toBe(text));
});

describe('formatDuration', () => {
  it.each([
    [1, '1 ms'],
    [45_000, '45 s'],
    [600_000, '10 min'],
    [5_400_000, '1 h 30 min'],
    [7_200_000, '2 h'],
  ])('%d ms is %s', (ms, text) => expect(formatDuration(ms)).toBe(text));
});
