#!/usr/bin/env node
// Fake nvidia-smi for development and tests on machines without NVIDIA GPUs. Not used in production.
//
// REMOTEGPU_FAKE_GPUS names a recorded `nvidia-smi -q` text capture (e.g.
// test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt; a first line starting with `#` is skipped).
// Answers like the real binary:
//   --query-gpu=<fields> --format=csv[,noheader][,nounits]   (header names and units as nvidia-smi prints them)
//   -L | --list-gpus                                          (GPU lines only; -q text has no MIG UUIDs)
//   -q | --query [-d <TYPES>]                                 (prints the capture; -d is accepted and ignored)
//   -i | --id=<index|uuid|bus id,...>                         (selects GPUs for the above)
//   no arguments                                              (a short summary, not the full table)
// An unknown --query-gpu field prints `Field "x" is not a valid field to query.` and exits 2.
// A capture without any `GPU xxxxxxxx:xx:xx.x` section is a recorded failure (e.g. an error_*.txt
// fixture): its text is printed and the exit code is REMOTEGPU_FAKE_EXIT_CODE, or the code
// nvidia-smi uses for that message (9 driver not loaded, 18 version mismatch, 6 no devices, ...).
// Plain JavaScript with no imports from the project so that it runs with bare `node`.

import { readFileSync } from 'node:fs';

const SECTION = /^GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f])\s*$/;

function main(argv, env) {
  const capturePath = env.REMOTEGPU_FAKE_GPUS;
  if (!capturePath) return fail(255, 'fake nvidia-smi: set REMOTEGPU_FAKE_GPUS to a recorded "nvidia-smi -q" capture');
  let text;
  try {
    text = readFileSync(capturePath, 'utf8').replace(/^#[^\n]*\n/, '');
  } catch (err) {
    return fail(255, `fake nvidia-smi: cannot read REMOTEGPU_FAKE_GPUS=${capturePath}: ${err.message}`);
  }
  const capture = parseCapture(text);
  if (capture.gpus.length === 0) return recordedFailure(text, env.REMOTEGPU_FAKE_EXIT_CODE);

  const args = parseArgs(argv);
  if (args.error) return fail(2, args.error);
  const gpus = selectGpus(capture.gpus, args.id);
  if (gpus === undefined) return fail(6, `No devices were found matching the id "${args.id}".`);
  if (args.queryGpu !== undefined) return queryGpu(capture, gpus, args);
  if (args.list) return ok(gpus.map((g) => `GPU ${g.index}: ${g.get('Product Name') ?? 'Unknown'} (UUID: ${g.get('GPU UUID') ?? 'N/A'})`).join('\n') + '\n');
  if (args.query) return ok([...capture.header, ...gpus.flatMap((g) => g.lines)].join('\n').replace(/\n*$/, '\n'));
  return ok(summary(capture, gpus));
}

// ---------- capture parsing ----------

/** Splits a `-q` capture into header lines and GPU sections; each section maps `A.B.C` key paths to values. */
function parseCapture(text) {
  const header = [];
  const gpus = [];
  const headerValues = new Map();
  let current;
  let stack = [];
  for (const line of text.split(/\r?\n/)) {
    const section = SECTION.exec(line);
    if (section) {
      const gpu = { index: gpus.length, busId: section[1], lines: [line], values: new Map() };
      gpu.get = (path) => gpu.values.get(path);
      gpus.push(gpu);
      current = gpu;
      stack = [];
      continue;
    }
    if (!current) {
      header.push(line);
      const kv = splitKeyValue(line.trim());
      if (kv && kv.value !== undefined) headerValues.set(kv.key, kv.value);
      continue;
    }
    current.lines.push(line);
    if (line.trim() === '') continue;
    const kv = splitKeyValue(line.trim());
    if (!kv) continue;
    const level = Math.max(0, Math.floor((line.length - line.trimStart().length) / 4) - 1);
    stack = stack.slice(0, level);
    stack[level] = kv.key;
    const path = stack.join('.');
    if (kv.value !== undefined && !current.values.has(path)) current.values.set(path, kv.value);
  }
  return { header, gpus, headerValue: (key) => headerValues.get(key) };
}

/** `Key   : value` → {key, value}; `Key` alone (a subsection) → {key}. Values may contain ':'. */
function splitKeyValue(line) {
  if (line === '' || /^=+/.test(line)) return undefined;
  const colon = line.indexOf(':');
  if (colon < 0) return { key: line.trim() };
  return { key: line.slice(0, colon).trim(), value: line.slice(colon + 1).trim() };
}

// ---------- arguments ----------

function parseArgs(argv) {
  const args = { format: [], list: false, query: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i] ?? '';
    switch (flag) {
      case '--query-gpu': args.queryGpu = value(); break;
      case '--format': args.format = value().split(',').map((s) => s.trim()); break;
      case '-L': case '--list-gpus': args.list = true; break;
      case '-q': case '--query': args.query = true; break;
      case '-d': case '--display': value(); break;
      case '-i': case '--id': args.id = value(); break;
      default:
        if (/^-i\S/.test(arg)) { args.id = arg.slice(2); break; }
        return { error: `Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n` };
    }
  }
  if (args.queryGpu !== undefined && !args.format.includes('csv')) {
    return { error: `Please specify the output format with --format=csv.\n` };
  }
  return args;
}

/** GPUs named by -i (indexes, UUIDs or bus ids, comma separated); undefined when one does not exist. */
function selectGpus(gpus, id) {
  if (id === undefined) return gpus;
  const picked = [];
  for (const wanted of id.split(',').map((s) => s.trim())) {
    const gpu = gpus.find((g) => String(g.index) === wanted || g.get('GPU UUID') === wanted ||
      g.busId.toUpperCase().endsWith(wanted.toUpperCase()));
    if (!gpu) return undefined;
    picked.push(gpu);
  }
  return picked;
}

// ---------- --query-gpu ----------

const ALIASES = { gpu_name: 'name', gpu_uuid: 'uuid', gpu_serial: 'serial', gpu_bus_id: 'pci.bus_id' };

/** Field → how to compute it from a section. `unit` is what nvidia-smi appends in csv mode (and in the header). */
const FIELDS = {
  timestamp: { get: () => timestamp() },
  driver_version: { get: (g, c) => c.headerValue('Driver Version') },
  count: { get: (g, c) => String(c.gpus.length) },
  index: { get: (g) => String(g.index) },
  name: { get: (g) => g.get('Product Name') },
  serial: { get: (g) => g.get('Serial Number') },
  uuid: { get: (g) => g.get('GPU UUID') },
  'pci.bus_id': { get: (g) => g.get('PCI.Bus Id') ?? g.busId },
  'pci.domain': { get: (g) => g.get('PCI.Domain') },
  'pci.bus': { get: (g) => g.get('PCI.Bus') },
  'pci.device': { get: (g) => g.get('PCI.Device') },
  'pci.device_id': { get: (g) => g.get('PCI.Device Id') },
  'pci.sub_device_id': { get: (g) => g.get('PCI.Sub System Id') },
  vbios_version: { get: (g) => g.get('VBIOS Version') },
  persistence_mode: { get: (g) => g.get('Persistence Mode') },
  compute_mode: { get: (g) => g.get('Compute Mode') },
  pstate: { get: (g) => g.get('Performance State') },
  'fan.speed': { unit: '%', get: (g) => g.get('Fan Speed') },
  'memory.total': { unit: 'MiB', get: (g) => g.get('FB Memory Usage.Total') },
  'memory.reserved': { unit: 'MiB', get: (g) => g.get('FB Memory Usage.Reserved') },
  'memory.used': { unit: 'MiB', get: (g) => g.get('FB Memory Usage.Used') },
  'memory.free': { unit: 'MiB', get: (g) => g.get('FB Memory Usage.Free') },
  'utilization.gpu': { unit: '%', get: (g) => g.get('Utilization.Gpu') },
  'utilization.memory': { unit: '%', get: (g) => g.get('Utilization.Memory') },
  'temperature.gpu': { number: true, get: (g) => g.get('Temperature.GPU Current Temp') },
  'temperature.memory': { number: true, get: (g) => g.get('Temperature.Memory Current Temp') },
  'power.draw': { unit: 'W', get: (g) => g.get('GPU Power Readings.Power Draw') ?? g.get('Power Readings.Power Draw') },
  'power.limit': { unit: 'W', get: (g) => g.get('GPU Power Readings.Current Power Limit') ?? g.get('Power Readings.Power Limit') },
  'clocks.current.graphics': { unit: 'MHz', get: (g) => g.get('Clocks.Graphics') },
  'clocks.current.sm': { unit: 'MHz', get: (g) => g.get('Clocks.SM') },
  'clocks.current.memory': { unit: 'MHz', get: (g) => g.get('Clocks.Memory') },
  'clocks.max.graphics': { unit: 'MHz', get: (g) => g.get('Max Clocks.Graphics') },
  'clocks.max.sm': { unit: 'MHz', get: (g) => g.get('Max Clocks.SM') },
  'clocks.max.memory': { unit: 'MHz', get: (g) => g.get('Max Clocks.Memory') },
  'ecc.mode.current': { get: (g) => g.get('ECC Mode.Current') },
  'mig.mode.current': { get: (g) => g.get('MIG Mode.Current') },
  'mig.mode.pending': { get: (g) => g.get('MIG Mode.Pending') },
  compute_cap: { get: (g) => computeCapability(g.get('Product Name') ?? '', g.get('Product Architecture') ?? '') },
};

function queryGpu(capture, gpus, args) {
  const requested = args.queryGpu.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const field of requested) {
    if (!FIELDS[ALIASES[field] ?? field]) return fail(2, `Field "${field}" is not a valid field to query.\n\n`);
  }
  const noheader = args.format.includes('noheader');
  const nounits = args.format.includes('nounits');
  const defs = requested.map((f) => ({ name: f, ...FIELDS[ALIASES[f] ?? f] }));
  const lines = [];
  if (!noheader) lines.push(defs.map((d) => (d.unit ? `${d.name} [${d.unit}]` : d.name)).join(', '));
  for (const gpu of gpus) {
    lines.push(defs.map((d) => formatValue(d.get(gpu, capture), d, nounits)).join(', '));
  }
  return ok(lines.join('\n') + '\n');
}

/** `-q` text value → csv cell: unavailable values in brackets, readings as number [+ unit]. */
function formatValue(raw, def, nounits) {
  if (raw === undefined || raw === '' || raw === 'N/A') return '[N/A]';
  if (/^\[.*\]$/.test(raw)) return raw;
  if (!def.unit && !def.number) return raw;
  const m = /^(-?\d+(?:\.\d+)?)/.exec(raw);
  if (!m) return `[${raw}]`;
  return def.unit && !nounits ? `${m[1]} ${def.unit}` : m[1];
}

/** `-q` has no compute capability; derive it from the product name, then the architecture. */
function computeCapability(name, architecture) {
  const byName = [
    [/\b(A100|A800|A30)\b/, '8.0'],
    [/\b(GH200|H100|H200|H800|H20)\b/, '9.0'],
    [/\b(GB200|B200|B100)\b/, '10.0'],
    [/RTX 50\d\d|Blackwell/, '12.0'],
    [/\bV100\b|TITAN V\b/i, '7.0'],
    [/\bT4\b|RTX 20\d\d|Quadro RTX|TITAN RTX/i, '7.5'],
    [/\bP100\b/, '6.0'],
    [/\b(P40|P4)\b|GTX 10\d\d/, '6.1'],
    [/\b(L40S?|L4|L20)\b|RTX 40\d\d|Ada Generation/, '8.9'],
    [/\b(A40|A10G?|A16|A2)\b|RTX 30\d\d|RTX A\d{4}/, '8.6'],
  ];
  for (const [pattern, cap] of byName) if (pattern.test(name)) return cap;
  const byArchitecture = { Hopper: '9.0', 'Ada Lovelace': '8.9', Ampere: '8.6', Turing: '7.5', Volta: '7.0', Pascal: '6.1', Blackwell: '10.0' };
  return byArchitecture[architecture];
}

function timestamp() {
  const d = new Date();
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// ---------- other outputs ----------

function summary(capture, gpus) {
  const head = `| NVIDIA-SMI (fake)   Driver Version: ${capture.headerValue('Driver Version') ?? 'N/A'}   CUDA Version: ${capture.headerValue('CUDA Version') ?? 'N/A'} |`;
  const rows = gpus.map((g) => `| ${String(g.index).padStart(3)}  ${g.get('Product Name') ?? 'Unknown'} | ${g.busId} | ${g.get('FB Memory Usage.Used') ?? 'N/A'} / ${g.get('FB Memory Usage.Total') ?? 'N/A'} | ${g.get('Utilization.Gpu') ?? 'N/A'} |`);
  return [head, ...rows].join('\n') + '\n';
}

/** Exit codes nvidia-smi uses for the messages in the error_* fixtures. */
function recordedFailure(text, exitCodeOverride) {
  const inferred = [
    [/version mismatch/i, 18],
    [/couldn't communicate with the NVIDIA driver/i, 9],
    [/No supported GPUs/i, 255],
    [/No devices were found/i, 6],
    [/Unable to determine the device handle|GPU is lost/i, 15],
  ].find(([pattern]) => pattern.test(text))?.[1] ?? 255;
  const code = exitCodeOverride !== undefined && exitCodeOverride !== '' ? Number(exitCodeOverride) : inferred;
  return { code, stdout: text.replace(/\n*$/, '\n'), stderr: '' };
}

function ok(stdout) {
  return { code: 0, stdout, stderr: '' };
}

/** nvidia-smi prints its errors on stdout. */
function fail(code, message) {
  return { code, stdout: message.endsWith('\n') ? message : `${message}\n`, stderr: '' };
}

const result = main(process.argv.slice(2), process.env);
process.stdout.write(result.stdout);
if (result.stderr) process.stderr.write(result.stderr);
process.exitCode = result.code;
