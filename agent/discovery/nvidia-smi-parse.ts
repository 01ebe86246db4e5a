import type { GpuInfo } from './types.js';

/**
 * Pure parsers for nvidia-smi output. No I/O here: `nvidia-smi.ts` runs the binary and feeds these.
 */

/** Fields the agent asks for. `mig.mode.current` needs driver >= 450; see BASE_QUERY_FIELDS. */
export const DEFAULT_QUERY_FIELDS: readonly string[] = [
  'index',
  'uuid',
  'name',
  'memory.total',
  'memory.used',
  'utilization.gpu',
  'temperature.gpu',
  'pci.bus_id',
  'driver_version',
  'mig.mode.current',
];

/** The same without fields that old drivers reject ("Field ... is not a valid field to query."). */
export const BASE_QUERY_FIELDS: readonly string[] = DEFAULT_QUERY_FIELDS.filter((f) => f !== 'mig.mode.current');

const MIB = 1024 * 1024;

/** nvidia-smi accepts a few aliases; the parser works on the canonical names. */
const FIELD_ALIASES: Readonly<Record<string, string>> = {
  gpu_name: 'name',
  gpu_uuid: 'uuid',
  gpu_serial: 'serial',
  gpu_bus_id: 'pci.bus_id',
};

/** Values that mean the GPU itself is in trouble (as opposed to "not available" like [N/A]), in any field. */
const GPU_GONE_VALUE = /^\[?(GPU is lost|GPU requires reset)\]?$/i;
/** Generic errors count only where a working GPU always answers; some boards report them for optional readings. */
const ERROR_VALUE = /^\[?(Unknown Error|ERR!)\]?$/i;
const CORE_FIELDS = new Set(['index', 'uuid', 'name', 'pci.bus_id', 'memory.total', 'memory.used']);

/** Lines nvidia-smi prints between rows when it cannot read one GPU. */
const ERROR_LINE = /^(Unable to determine|Failed to initialize|No devices were found|NVIDIA-SMI has failed)/;

export interface GpuQueryParse {
  readonly gpus: GpuInfo[];
  /** Non-empty lines that were neither a header nor a row with the right number of cells. */
  readonly unparsed: string[];
}

/**
 * Parses `nvidia-smi --query-gpu=<fields> --format=csv[,noheader][,nounits]` output into GPUs.
 * `fields` is the list passed to --query-gpu, in order. Header lines (`name, memory.total [MiB]`) and
 * units (`81920 MiB`, `0 %`) are tolerated. Missing fields get defaults: index = row position,
 * strings '', memory 0, utilization/temperature -1. A row holding `[GPU is lost]`, `[Unknown Error]`
 * or similar is returned with health 'unhealthy'. cudaVersion is always '' (not a query field).
 * Never throws.
 */
export function parseGpuQueryCsv(stdout: string, fields: readonly string[]): GpuInfo[] {
  return parseGpuQueryCsvDetailed(stdout, fields).gpus;
}

/** Like parseGpuQueryCsv, and also returns the lines it could not place. Never throws. */
export function parseGpuQueryCsvDetailed(stdout: string, fields: readonly string[]): GpuQueryParse {
  const names = fields.map((f) => canonicalField(f.trim()));
  const gpus: GpuInfo[] = [];
  const unparsed: string[] = [];
  for (const rawLine of stdout.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '') continue;
    const cells = line.split(',').map((c) => c.trim());
    if (isHeader(cells, names)) continue;
    if (cells.length !== names.length || ERROR_LINE.test(line)) {
      unparsed.push(line);
      continue;
    }
    const row = new Map<string, string>();
    names.forEach((name, i) => row.set(name, cells[i] ?? ''));
    gpus.push(rowToGpu(row, gpus.length));
  }
  return { gpus, unparsed };
}

/**
 * Reads the CUDA version from `nvidia-smi -q` ("CUDA Version : 12.4") or from the banner of plain
 * `nvidia-smi` ("CUDA Version: 12.4"). Returns '' when absent (old drivers) or N/A. Never throws.
 */
export function parseCudaVersion(text: string): string {
  const match = /CUDA Version\s*:\s*(\d+(?:\.\d+)*)/.exec(text);
  return match?.[1] ?? '';
}

/**
 * Normalizes a PCI bus id to nvidia-smi's query form: 8-digit domain, upper-case hex
 * (`0000:0b:00.0` → `00000000:0B:00.0`). Anything else is returned trimmed. Never throws.
 */
export function normalizePciBusId(busId: string): string {
  const m = /^([0-9a-f]{1,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(busId.trim());
  if (!m) return busId.trim();
  return `${m[1]!.padStart(8, '0')}:${m[2]}:${m[3]}.${m[4]}`.toUpperCase();
}

function canonicalField(field: string): string {
  return FIELD_ALIASES[field] ?? field;
}

/** A header cell is the field name, optionally followed by a unit: `memory.total [MiB]`. */
function isHeader(cells: readonly string[], names: readonly string[]): boolean {
  if (cells.length !== names.length) return false;
  return cells.every((cell, i) => canonicalField(cell.replace(/\s*\[[^\]]*\]$/, '')) === names[i]);
}

function rowToGpu(row: ReadonlyMap<string, string>, position: number): GpuInfo {
  const text = (field: string): string => {
    const v = row.get(field);
    return v === undefined || isUnavailable(v) ? '' : v;
  };
  const problems = [
    ...new Set(
      [...row.entries()]
        .filter(([field, v]) => GPU_GONE_VALUE.test(v) || (CORE_FIELDS.has(field) && ERROR_VALUE.test(v)))
        .map(([, v]) => stripBrackets(v)),
    ),
  ];
  const index = toNumber(row.get('index'));
  return {
    index: index ?? position,
    uuid: text('uuid'),
    model: text('name'),
    memoryBytes: mibToBytes(row.get('memory.total')),
    memoryUsedBytes: mibToBytes(row.get('memory.used')),
    utilizationPercent: toNumber(row.get('utilization.gpu')) ?? -1,
    temperatureC: toNumber(row.get('temperature.gpu')) ?? -1,
    pciBusId: normalizePciBusId(text('pci.bus_id')),
    driverVersion: text('driver_version'),
    cudaVersion: '',
    health: problems.length > 0 ? 'unhealthy' : 'healthy',
    healthReason: problems.length > 0 ? `nvidia-smi reports: ${problems.join('; ')}` : '',
    migEnabled: text('mig.mode.current').toLowerCase() === 'enabled',
  };
}

/** `N/A`, `[N/A]`, `[Not Supported]`, `[GPU is lost]`, ... : anything that is not a reading. */
function isUnavailable(value: string): boolean {
  return value === '' || /^\[.*\]$/.test(value) || /^(N\/A|Not Supported|ERR!)$/i.test(value);
}

function stripBrackets(value: string): string {
  return value.replace(/^\[(.*)\]$/, '$1');
}

/** Leading number of a cell such as `81920`, `81920 MiB`, `0 %`, `29.70 W`; undefined when not a reading. */
function toNumber(value: string | undefined): number | undefined {
  if (value === undefined || isUnavailable(value)) return undefined;
  const m = /^(-?\d+(?:\.\d+)?)/.exec(value);
  return m ? Number(m[1]) : undefined;
}

function mibToBytes(value: string | undefined): number {
  const mib = toNumber(value);
  return mib === undefined ? 0 : Math.round(mib * MIB);
}
