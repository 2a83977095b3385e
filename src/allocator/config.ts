// What to run: how many worker threads, in how many processes, and where.
// Flags follow timely's: -w/--threads, -n/--processes, -p/--process,
// -h/--hostfile; and --tls-dir (a folder made by `weft keys`).

import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { MAX_RING_BYTES, MIN_RING_BYTES } from '../transport/ring.ts';
import { parseAddress } from '../transport/address.ts';
import { checkTls, tlsFromDir, type TlsFiles } from '../transport/tls.ts';

export interface Options {
  /** Bytes of each ring between two threads (a power of two). Default 1 MiB. */
  ringBytes?: number;
  /** Largest encoded batch a channel accepts, in bytes. Default 256 MiB. */
  maxMessageBytes?: number;
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
  /** Silence after which a peer is declared dead, in ms. Default 3 000. */
  heartbeatTimeoutMs?: number;
  /**
   * Mutual TLS between the processes (PEM key, certificate, CA); defaults
   * to the files `weft keys` wrote in the folder WEFT_TLS_DIR names.
   */
  tls?: TlsFiles;
}

export type Config =
  | { kind: 'thread'; threads: 1; options: Required<Options> }
  | { kind: 'process'; threads: number; options: Required<Options> }
  | { kind: 'cluster'; threads: number; options: Required<Options>; cluster: Required<Omit<ClusterOptions, keyof Options | 'secret' | 'tls'>> & { secret: string | undefined; tls: TlsFiles | undefined } };

export const DEFAULT_RING_BYTES = 1 << 20;
export const DEFAULT_MAX_MESSAGE_BYTES = 256 << 20;
/** Without a hostfile, process i listens on 127.0.0.1:(DEFAULT_PORT + i). */
export const DEFAULT_PORT = 2101;

function count(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(`${what} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function options(o: Options = {}): Required<Options> {
  const ringBytes = o.ringBytes ?? DEFAULT_RING_BYTES;
  if (!Number.isInteger(ringBytes) || ringBytes < MIN_RING_BYTES || ringBytes > MAX_RING_BYTES || (ringBytes & (ringBytes - 1)) !== 0) {
    throw new ConfigError(`ringBytes must be a power of two from ${MIN_RING_BYTES} to ${MAX_RING_BYTES}, got ${ringBytes}`);
  }
  const maxMessageBytes = o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1 || maxMessageBytes > 0xffffffff) {
    throw new ConfigError(`maxMessageBytes must be an integer from 1 to ${0xffffffff}, got ${maxMessageBytes}`);
  }
  return { ringBytes, maxMessageBytes };
}

export const Config = {
  /** One worker thread. */
  thread(o?: Options): Config {
    return { kind: 'thread', threads: 1, options: options(o) };
  },

  /** `threads` worker threads in this process. */
  process(threads: number, o?: Options): Config {
    return { kind: 'process', threads: count('threads', threads), options: options(o) };
  },

  /** `threads` worker threads in each of `addresses.length` processes, over TCP. */
  cluster(o: ClusterOptions): Config {
    const threads = count('threads', o.threads);
    if (!Array.isArray(o.addresses) || o.addresses.length === 0) throw new ConfigError('cluster addresses must be a non-empty list of host:port');
    for (const a of o.addresses) parseAddress(a);
    if (!Number.isInteger(o.process) || o.process < 0 || o.process >= o.addresses.length) {
      throw new ConfigError(`process index must be an integer from 0 to ${o.addresses.length - 1}, got ${JSON.stringify(o.process)}`);
    }
    return {
      kind: 'cluster',
      threads,
      options: options(o),
      cluster: {
        threads,
        process: o.process,
        addresses: [...o.addresses],
        secret: secretOf(o.secret),
        connectTimeoutMs: o.connectTimeoutMs ?? 30_000,
        heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? 3_000,
        tls: o.tls !== undefined ? checkTls(o.tls) : process.env.WEFT_TLS_DIR ? checkTls(tlsFromDir(process.env.WEFT_TLS_DIR, o.process)) : undefined,
      },
    };
  },

  /**
   * Reads timely's flags from `argv` (default: process.argv.slice(2)) and
   * returns the config and the arguments it did not consume.
   */
  fromArgs(argv: readonly string[] = process.argv.slice(2)): { config: Config; rest: string[] } {
    let threads = 1;
    let processes = 1;
    let index = 0;
    let hostfile: string | undefined;
    let tlsDir: string | undefined;
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
        case '-w': case '--threads': threads = count('--threads', int()); break;
        case '-n': case '--processes': processes = count('--processes', int()); break;
        case '-p': case '--process': index = int(); break;
        case '-h': case '--hostfile': hostfile = value(); break;
        case '--tls-dir': tlsDir = value(); break;
        default: rest.push(arg);
      }
    }
    if (processes === 1 && hostfile === undefined) {
      if (index !== 0) throw new ConfigError(`--process ${index} is out of range for 1 process`);
      return { config: Config.process(threads), rest };
    }
    const addresses = hostfile !== undefined ? readHostfile(hostfile) : Array.from({ length: processes }, (_, i) => `127.0.0.1:${DEFAULT_PORT + i}`);
    if (addresses.length < processes) throw new ConfigError(`hostfile ${hostfile} lists ${addresses.length} addresses for ${processes} processes`);
    const tls = tlsDir !== undefined ? { tls: tlsFromDir(tlsDir, index) } : {};
    return { config: Config.cluster({ threads, process: index, addresses: addresses.slice(0, processes), ...tls }), rest };
  },
};

/** The handshake's secret: given, or WEFT_SECRET (unset or empty: none); an empty one given is a mistake. */
function secretOf(given: string | undefined): string | undefined {
  if (given === undefined) return process.env.WEFT_SECRET || undefined;
  if (typeof given !== 'string' || given === '') throw new ConfigError(`secret must be a non-empty string, got ${JSON.stringify(given)}`);
  return given;
}

function readHostfile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read hostfile ${path}: ${(cause as Error).message}`, { cause });
  }
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** Total workers a config runs, across processes. */
export function peersOf(config: Config): number {
  return config.kind === 'cluster' ? config.threads * config.cluster.addresses.length : config.threads;
}
