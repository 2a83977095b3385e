// What to run: how many worker threads, in how many processes, and where.
// Flags follow timely's: -w/--threads, -n/--processes, -p/--process,
// -h/--hostfile; and weft's cluster options: --tls-dir (a folder made by
// `weft keys`), --on-peer-loss, --heartbeat-timeout, --connect-timeout,
// each with an environment variable (cluster-flags.ts) that Config.cluster
// reads when the option is not given, as it reads WEFT_SECRET.

import { ConfigError } from '../errors.ts';
import { argsRead } from './launched.ts';
import { readHostfile } from './hostfile.ts';
import { checkRingBytes, MAX_SLAB_BYTES } from '../transport/index.ts';
import { parseAddress } from '../transport/index.ts';
import { checkTls, tlsFromDir, type TlsFiles } from '../transport/index.ts';
import { CLUSTER_FLAGS, DEFAULT_HEARTBEAT_TIMEOUT_MS, duration, fromEnv, MIN_HEARTBEAT_TIMEOUT_MS, peerLossOf, type Tuned } from './cluster-flags.ts';

export interface Options {
  /** Bytes of each ring between two threads (a power of two). Default 1 MiB. */
  ringBytes?: number;
  /** Largest encoded batch a channel accepts, in bytes. Default 256 MiB. */
  maxMessageBytes?: number;
  /**
   * Bytes of a pusher's backlog (frames waiting for ring space) over which
   * `send()` returns false and `ready()` waits. Default 1 MiB.
   */
  highWaterBytes?: number;
  /**
   * Hard cap on a worker's backlog, all its pushers together: past it the
   * worker fails with an OverflowError. Default 256 MiB.
   */
  maxBacklogBytes?: number;
  /**
   * Bytes of shared memory each worker may have in flight as large
   * messages (64 KiB and more) to threads of its own process, outside the
   * rings; only what is used is taken. Past it, large messages wait as
   * backlog. 0 sends them through the rings. Default 256 MiB.
   */
  slabBytes?: number;
}

export interface ClusterOptions extends Options {
  threads: number;
  /** This process's index in `addresses`. */
  process: number;
  /** `host:port` per process; process i listens on addresses[i]. */
  addresses: string[];
  /** Shared secret for the handshake; defaults to the WEFT_SECRET environment variable. */
  secret?: string;
  /** How long to keep trying to connect to peers, in ms. Default 30 000. */
  connectTimeoutMs?: number;
  /** Silence after which a peer is declared dead, in ms. Default 10 000 (docs/cluster.md, "Heartbeats"). */
  heartbeatTimeoutMs?: number;
  /**
   * What the loss of a peer process (it dies, goes silent past
   * heartbeatTimeoutMs, or closes its connections without a goodbye) does.
   * 'abort' (the default, fail-stop): every worker stops with an
   * FailStopError and join() rejects with a PeerError. 'continue': the
   * survivors run on; each worker learns of it from `allocator.peerLosses()`,
   * its channels from the lost workers close, and a send to them throws a
   * PeerError (docs/semantics.md, "Peer loss").
   */
  onPeerLoss?: 'abort' | 'continue';
  /**
   * Indices in `addresses` of spare processes (not 0). They count in the
   * cluster's shape (worker indices, the handshake) but nobody waits for
   * them: each starts absent, and a spare that starts while the cluster runs
   * joins it; `allocator.peerJoins()` reports it, and until then a send to
   * its workers throws a PeerError. A spare that never starts delays
   * nothing; one that joins and dies is a lost peer. Needs onPeerLoss
   * 'continue' (docs/semantics.md, "Spares").
   */
  spares?: number[];
  /**
   * Takes lost process `replaces`'s index and place: this process listens
   * on its own address (`addresses[process]`, typically a spare's) but
   * runs as process `replaces` (its workers, its tasks under
   * Runtime.cluster). It dials every process, and each refuses it unless
   * it has lost process `replaces` ("process 2 is still connected"), so
   * the survivors must run with onPeerLoss 'continue'. Under TLS it shows
   * process `replaces`'s certificate (docs/cluster.md, "Processes that
   * come back").
   */
  replaces?: number;
  /**
   * Mutual TLS between the processes (PEM key, certificate, CA); defaults
   * to the files `weft keys` wrote in the folder WEFT_TLS_DIR names.
   */
  tls?: TlsFiles;
}

/**
 * What a Config holds, checked, as initialize and the backends read it.
 * Internal: the public type is the class below, whose accessors are what a
 * program may rely on.
 */
export type Settings =
  | { kind: 'thread'; threads: 1; options: Required<Options> }
  | { kind: 'process'; threads: number; options: Required<Options> }
  | { kind: 'cluster'; threads: number; options: Required<Options>; cluster: Required<Omit<ClusterOptions, keyof Options | 'secret' | 'tls' | 'replaces'>> & { secret: string | undefined; tls: TlsFiles | undefined; replaces: number | undefined } };

export const DEFAULT_RING_BYTES = 1 << 20;
export const DEFAULT_MAX_MESSAGE_BYTES = 256 << 20;
export const DEFAULT_HIGH_WATER_BYTES = 1 << 20;
export const DEFAULT_MAX_BACKLOG_BYTES = 256 << 20;
export const DEFAULT_SLAB_BYTES = 256 << 20;
/**
 * Worker threads per process. Rings grow as threads^2 (one per ordered
 * pair): 64 threads with 1 MiB rings already reserve 4 GiB.
 */
export const MAX_THREADS = 64;
/** All rings of one process together, in bytes. */
export const MAX_RING_TOTAL = 2 ** 32;
/** Without a hostfile, process i listens on 127.0.0.1:(DEFAULT_PORT + i). */
export const DEFAULT_PORT = 2101;

const OPTION_FIELDS: readonly (keyof Options)[] = ['ringBytes', 'maxMessageBytes', 'highWaterBytes', 'maxBacklogBytes', 'slabBytes'];
/** The cluster options Config.fromArgs takes beside the flags (the shape of the cluster is the flags'). */
const ARGS_CLUSTER: readonly (keyof ClusterOptions)[] = ['secret', 'connectTimeoutMs', 'heartbeatTimeoutMs', 'onPeerLoss'];
const CLUSTER_FIELDS: readonly (keyof ClusterOptions)[] = ['threads', 'process', 'addresses', 'secret', 'connectTimeoutMs', 'heartbeatTimeoutMs', 'onPeerLoss', 'spares', 'replaces', 'tls'];

/** Refuses a field `o` should not have, naming it (and where it belongs, when it is a field of another part). */
function onlyKnown(what: string, o: object, known: readonly string[]): void {
  for (const field of Object.keys(o)) {
    if (known.includes(field)) continue;
    const belongs = (OPTION_FIELDS as readonly string[]).includes(field)
      ? ': it is an option of Config.thread/process/cluster (config.options)'
      : (CLUSTER_FIELDS as readonly string[]).includes(field) ? ': it is a cluster option, given to Config.cluster({ ... }) (config.cluster)' : '';
    throw new ConfigError(`${what} has no field ${JSON.stringify(field)}${belongs}; its fields are ${known.join(', ')}`);
  }
}

function count(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(`${what} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function threadCount(what: string, value: unknown): number {
  const n = count(what, value);
  if (n > MAX_THREADS) throw new ConfigError(`${what} is at most ${MAX_THREADS} per process (rings grow as threads^2), got ${n}; use more processes (Config.cluster)`);
  return n;
}

function sparesOf(value: unknown, processes: number, onPeerLoss: 'abort' | 'continue'): number[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((k) => !Number.isInteger(k) || k < 1 || k >= processes) || new Set(value).size !== value.length) {
    throw new ConfigError(`spares must be distinct process indices from 1 to ${processes - 1} (process 0 is never a spare), got ${JSON.stringify(value)}`);
  }
  if (value.length > 0 && onPeerLoss !== 'continue') {
    throw new ConfigError(`spares ${JSON.stringify(value)} need onPeerLoss: 'continue': a spare that has not joined, or has left, is a peer the others run without`);
  }
  return [...(value as number[])].sort((a, b) => a - b);
}

function bytes(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${what} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Refuses a ring size that makes this process's rings (threads^2 of them) too large together. */
function ringTotal(threads: number, extra: number, o: Required<Options>): void {
  const total = (threads * (threads - 1) + extra) * o.ringBytes;
  if (total > MAX_RING_TOTAL) {
    throw new ConfigError(`${threads} threads with ringBytes ${o.ringBytes} need ${total} bytes of rings in one process (at most ${MAX_RING_TOTAL}); use smaller rings or fewer threads per process`);
  }
}

function options(where: string, o: Options = {}, known: readonly string[] = OPTION_FIELDS): Required<Options> {
  if (o === null || typeof o !== 'object') throw new ConfigError(`${where} options must be an object, got ${JSON.stringify(o)}`);
  onlyKnown(`${where}'s options`, o, known);
  const ringBytes = o.ringBytes ?? DEFAULT_RING_BYTES;
  checkRingBytes(ringBytes);
  const maxMessageBytes = bytes('maxMessageBytes', o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, 1, 0xffffffff);
  const maxBacklogBytes = bytes('maxBacklogBytes', o.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES, 1, Number.MAX_SAFE_INTEGER);
  const highWaterBytes = bytes('highWaterBytes', o.highWaterBytes ?? Math.min(DEFAULT_HIGH_WATER_BYTES, maxBacklogBytes), 0, maxBacklogBytes);
  const slabBytes = bytes('slabBytes', o.slabBytes ?? DEFAULT_SLAB_BYTES, 0, MAX_SLAB_BYTES);
  return { ringBytes, maxMessageBytes, highWaterBytes, maxBacklogBytes, slabBytes };
}

/** The settings behind a Config (set in the class's static block: only this module reads them). */
let settingsOf: (c: Config) => Settings;
let isConfig: (c: object) => c is Config;

/**
 * What to run: how many worker threads, in how many processes, and where.
 * Made by `Config.thread()`, `Config.process(n)`, `Config.cluster({...})`
 * or `Config.fromArgs()`, each of which checks what it is given; a config
 * cannot be changed, copied or made by hand (make another instead).
 */
export class Config {
  readonly #settings: Settings;

  private constructor(settings: Settings) {
    this.#settings = settings;
  }

  static {
    settingsOf = (c) => c.#settings;
    isConfig = (c): c is Config => #settings in c;
  }

  /** Worker threads in each process. */
  get threads(): number {
    return this.#settings.threads;
  }

  /** Processes in the run: 1 but for `Config.cluster`. */
  get processes(): number {
    const s = this.#settings;
    return s.kind === 'cluster' ? s.cluster.addresses.length : 1;
  }

  /**
   * This process's index in the cluster's addresses (`-p`, or
   * `Config.cluster({ process })`); 0 outside a cluster. A replacement
   * (`replaces`) listens there but runs as the process it replaces.
   */
  get process(): number {
    const s = this.#settings;
    return s.kind === 'cluster' ? s.cluster.process : 0;
  }

  /** Worker threads in the whole run, across its processes: what each allocator's `peers` is. */
  get workers(): number {
    return this.threads * this.processes;
  }

  /** One worker thread. */
  static thread(o?: Options): Config {
    return new Config({ kind: 'thread', threads: 1, options: options('Config.thread', o) });
  }

  /** `threads` worker threads in this process. */
  static process(threads: number, o?: Options): Config {
    const n = threadCount('threads', threads);
    const opts = options('Config.process', o);
    ringTotal(n, 0, opts);
    return new Config({ kind: 'process', threads: n, options: opts });
  }

  /** `threads` worker threads in each of `addresses.length` processes, over TCP. */
  static cluster(o: ClusterOptions): Config {
    if (o === null || typeof o !== 'object') throw new ConfigError(`Config.cluster needs { threads, process, addresses }, got ${JSON.stringify(o)}`);
    const threads = threadCount('threads', o.threads);
    if (!Array.isArray(o.addresses) || o.addresses.length === 0) throw new ConfigError('cluster addresses must be a non-empty list of host:port');
    for (const [i, a] of o.addresses.entries()) {
      parseAddress(a);
      // Two processes cannot listen on one address: the second would fail to bind, or dial the first as itself.
      const first = o.addresses.indexOf(a);
      if (first !== i) throw new ConfigError(`cluster addresses ${first} and ${i} are both ${JSON.stringify(a)}: each process listens on an address of its own`);
    }
    if (!Number.isInteger(o.process) || o.process < 0 || o.process >= o.addresses.length) {
      throw new ConfigError(`process index must be an integer from 0 to ${o.addresses.length - 1}, got ${JSON.stringify(o.process)}`);
    }
    const opts = options('Config.cluster', o, [...OPTION_FIELDS, ...CLUSTER_FIELDS]);
    // Two more rings per thread: to and from the router.
    ringTotal(threads, 2 * threads, opts);
    const onPeerLoss = peerLossOf(fromEnv('onPeerLoss', o.onPeerLoss));
    const replaces = replacesOf(o.replaces, o.process, o.addresses.length);
    // The certificate shown is that of the index this process runs as.
    const as = replaces ?? o.process;
    return new Config({
      kind: 'cluster',
      threads,
      options: opts,
      cluster: {
        threads,
        process: o.process,
        addresses: [...o.addresses],
        secret: secretOf(o.secret),
        connectTimeoutMs: duration('connectTimeoutMs', fromEnv('connectTimeoutMs', o.connectTimeoutMs) ?? 30_000, 1),
        heartbeatTimeoutMs: duration('heartbeatTimeoutMs', fromEnv('heartbeatTimeoutMs', o.heartbeatTimeoutMs) ?? DEFAULT_HEARTBEAT_TIMEOUT_MS, MIN_HEARTBEAT_TIMEOUT_MS),
        onPeerLoss,
        spares: sparesOf(o.spares, o.addresses.length, onPeerLoss),
        replaces,
        tls: o.tls !== undefined ? checkTls(o.tls, as) : process.env.WEFT_TLS_DIR ? tlsFromDir(process.env.WEFT_TLS_DIR, as) : undefined,
      },
    });
  }

  /**
   * Reads timely's flags from `argv` (default: process.argv.slice(2)) and
   * returns the config and the arguments it did not consume. `options` are
   * the program's own, over what the flags and the environment say (as an
   * option given to Config.cluster is); the cluster ones apply only when
   * the flags make a cluster.
   */
  static fromArgs(argv: readonly string[] = process.argv.slice(2), options: Options & Pick<ClusterOptions, 'secret' | 'connectTimeoutMs' | 'heartbeatTimeoutMs' | 'onPeerLoss'> = {}): { config: Config; rest: string[] } {
    if (!Array.isArray(argv) || argv.some((arg) => typeof arg !== 'string')) {
      throw new ConfigError(`Config.fromArgs takes the command line as an array of strings (process.argv.slice(2)), got ${typeof argv === 'string' ? JSON.stringify(argv) : String(argv)}`);
    }
    if (options === null || typeof options !== 'object') throw new ConfigError(`Config.fromArgs's options must be an object, got ${JSON.stringify(options)}`);
    onlyKnown('Config.fromArgs\'s options', options, [...OPTION_FIELDS, ...ARGS_CLUSTER]);
    const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
    argsRead();
    let threads = 1;
    let processes = 1;
    let index = 0;
    let hostfile: string | undefined;
    let tlsDir: string | undefined;
    let replaces: number | undefined;
    const tuned: Partial<Pick<ClusterOptions, Tuned>> = {};
    const rest: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]!;
      const eq = arg.indexOf('=');
      const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
      const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
      const value = (): string => {
        if (inline !== undefined) return inline;
        const v = argv[++i];
        if (v === undefined) throw new ConfigError(`flag ${flag} needs a value`);
        return v;
      };
      const int = (): number => {
        const v = value();
        if (!/^\d+$/.test(v)) throw new ConfigError(`flag ${flag} needs a non-negative integer, got ${JSON.stringify(v)}`);
        return Number(v);
      };
      switch (flag) {
        case '-w': case '--threads': threads = threadCount('--threads', int()); break;
        case '-n': case '--processes': processes = count('--processes', int()); break;
        case '-p': case '--process': index = int(); break;
        case '-h': case '--hostfile': hostfile = value(); break;
        case '--tls-dir': tlsDir = value(); break;
        case '--replaces': replaces = int(); break;
        case CLUSTER_FLAGS.onPeerLoss.flag: tuned.onPeerLoss = peerLossOf(value()); break;
        case CLUSTER_FLAGS.heartbeatTimeoutMs.flag: tuned.heartbeatTimeoutMs = duration('heartbeatTimeoutMs', int(), MIN_HEARTBEAT_TIMEOUT_MS); break;
        case CLUSTER_FLAGS.connectTimeoutMs.flag: tuned.connectTimeoutMs = duration('connectTimeoutMs', int(), 1); break;
        default: rest.push(arg);
      }
    }
    if (processes === 1 && hostfile === undefined) {
      if (index !== 0) throw new ConfigError(`--process ${index} is out of range for 1 process`);
      const own = Object.fromEntries(Object.entries(given).filter(([field]) => (OPTION_FIELDS as readonly string[]).includes(field)));
      return { config: Config.process(threads, own), rest };
    }
    const hosts = hostfile !== undefined ? readHostfile(hostfile) : { addresses: Array.from({ length: processes }, (_, i) => `127.0.0.1:${DEFAULT_PORT + i}`), spares: [] };
    if (hosts.addresses.length < processes) throw new ConfigError(`hostfile ${hostfile} lists ${hosts.addresses.length} addresses for ${processes} processes`);
    const tls = tlsDir !== undefined ? { tls: tlsFromDir(tlsDir, replaces ?? index) } : {};
    // A hostfile that marks spares asks for a cluster that runs without them.
    const spares = hosts.spares.filter((k) => k < processes);
    const membership = spares.length > 0 ? { spares, onPeerLoss: 'continue' as const } : {};
    return { config: Config.cluster({ threads, process: index, addresses: hosts.addresses.slice(0, processes), ...membership, ...tuned, ...tls, ...(replaces !== undefined ? { replaces } : {}), ...given }), rest };
  }
}

function replacesOf(value: unknown, me: number, processes: number): number | undefined {
  if (value === undefined) return undefined;
  if (me === 0) throw new ConfigError(`process 0 cannot replace another (it orchestrates and is never a spare), got replaces ${JSON.stringify(value)}`);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value >= processes || value === me) {
    throw new ConfigError(`replaces (--replaces) must be the index of another process, from 1 to ${processes - 1} (process 0 is never replaced), not this process's own (${me}), got ${JSON.stringify(value)}`);
  }
  return value;
}

/** The handshake's secret: given, or WEFT_SECRET (unset or empty: none); an empty one given is a mistake. */
function secretOf(given: string | undefined): string | undefined {
  if (given === undefined) return process.env.WEFT_SECRET || undefined;
  if (typeof given !== 'string' || given === '') throw new ConfigError(`secret must be a non-empty string, got ${JSON.stringify(given)}`);
  return given;
}

/**
 * The settings of a config as `initialize` (or `where`) receives it. Only a
 * Config made by `Config.*` has them: anything else (a hand-made object,
 * a copy such as `{ ...config }`) is a ConfigError that says how to make
 * one, naming a field that belongs to `Config.*`'s options.
 */
export function checkConfig(c: unknown, where = 'initialize'): Settings {
  const want = 'a Config (Config.thread(), Config.process(n), Config.cluster({...}) or Config.fromArgs().config)';
  if (c === null || typeof c !== 'object') throw new ConfigError(`${where} needs ${want}, got ${c === null ? 'null' : typeof c}`);
  if (isConfig(c)) return settingsOf(c);
  const option = Object.keys(c).find((f) => (OPTION_FIELDS as readonly string[]).includes(f) || (CLUSTER_FIELDS as readonly string[]).includes(f));
  const hint = option === undefined ? '' : `; ${JSON.stringify(option)} is an option: give it to Config.thread/process/cluster`;
  throw new ConfigError(`${where} needs ${want}, got an object Config.* did not make: a hand-made object or a copy ({ ...config }) is not a config${hint}`);
}

/** Total workers a config runs, across processes. */
export function peersOf(config: Settings): number {
  return config.kind === 'cluster' ? config.threads * config.cluster.addresses.length : config.threads;
}
