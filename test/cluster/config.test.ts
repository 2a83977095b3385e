// Config.cluster and Config.fromArgs: what a cluster needs, and the clear
// ConfigError when it is wrong.

import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { Config, ConfigError } from '../../src/index.ts';
import { DEFAULT_PORT } from '../../src/allocator/config.ts';
import { hostfile, ROOT } from './helpers.ts';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('Config.cluster', () => {
  it('keeps the addresses, the index, and the defaults', () => {
    const c = Config.cluster({ threads: 2, process: 1, addresses: ['127.0.0.1:4000', '[::1]:4001'], secret: 's' });
    expect(c.kind).toBe('cluster');
    if (c.kind !== 'cluster') return;
    expect(c.threads).toBe(2);
    expect(c.cluster).toMatchObject({ process: 1, addresses: ['127.0.0.1:4000', '[::1]:4001'], secret: 's', heartbeatTimeoutMs: 10_000 });
  });

  it.each([
    ['not host:port', { threads: 1, process: 0, addresses: ['localhost'] }, /address "localhost" is not host:port/],
    ['port 0', { threads: 1, process: 0, addresses: ['127.0.0.1:0'] }, /is not host:port/],
    ['port too large', { threads: 1, process: 0, addresses: ['127.0.0.1:70000'] }, /is not host:port/],
    ['no addresses', { threads: 1, process: 0, addresses: [] }, /non-empty list/],
    ['index out of range', { threads: 1, process: 2, addresses: ['127.0.0.1:1', '127.0.0.1:2'] }, /process index must be an integer from 0 to 1, got 2/],
    ['negative index', { threads: 1, process: -1, addresses: ['127.0.0.1:1'] }, /from 0 to 0, got -1/],
    ['zero threads', { threads: 0, process: 0, addresses: ['127.0.0.1:1'] }, /threads must be a positive integer/],
    ['an empty secret', { threads: 1, process: 0, addresses: ['127.0.0.1:1'], secret: '' }, /secret must be a non-empty string, got ""/],
  ])('refuses %s with a ConfigError', (_, o, message) => {
    expect(() => Config.cluster(o)).toThrow(ConfigError);
    expect(() => Config.cluster(o)).toThrow(message);
  });

  it('keeps spares (sorted) with onPeerLoss continue; none by default', () => {
    const addresses = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3', '127.0.0.1:4'];
    const c = Config.cluster({ threads: 1, process: 0, addresses, onPeerLoss: 'continue', spares: [3, 1] });
    expect(c.kind === 'cluster' && c.cluster.spares).toEqual([1, 3]);
    const plain = Config.cluster({ threads: 1, process: 0, addresses });
    expect(plain.kind === 'cluster' && plain.cluster.spares).toEqual([]);
  });

  it.each([
    ['a spare index out of range', { spares: [3], onPeerLoss: 'continue' }, /spares must be distinct process indices from 1 to 2 \(process 0 is never a spare\), got \[3\]/],
    ['process 0 as a spare', { spares: [0], onPeerLoss: 'continue' }, /spares must be distinct process indices from 1 to 2 .*got \[0\]/],
    ['a spare twice', { spares: [2, 2], onPeerLoss: 'continue' }, /spares must be distinct .*got \[2,2\]/],
    ['spares that are not a list', { spares: 2, onPeerLoss: 'continue' }, /spares must be distinct .*got 2/],
    ['spares without onPeerLoss', { spares: [2] }, /spares \[2\] need onPeerLoss: 'continue'/],
    ["spares with onPeerLoss 'abort'", { spares: [2], onPeerLoss: 'abort' }, /spares \[2\] need onPeerLoss: 'continue'/],
  ])('refuses %s with a ConfigError naming the option', (_, o, message) => {
    const given = { threads: 1, process: 0, addresses: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'], ...o } as Parameters<typeof Config.cluster>[0];
    expect(() => Config.cluster(given)).toThrow(ConfigError);
    expect(() => Config.cluster(given)).toThrow(message);
  });

  it('takes the secret from WEFT_SECRET when none is given', () => {
    const saved = process.env.WEFT_SECRET;
    process.env.WEFT_SECRET = 'from the environment';
    try {
      const c = Config.cluster({ threads: 1, process: 0, addresses: ['127.0.0.1:1'] });
      expect(c.kind === 'cluster' && c.cluster.secret).toBe('from the environment');
    } finally {
      if (saved === undefined) delete process.env.WEFT_SECRET;
      else process.env.WEFT_SECRET = saved;
    }
  });
});

describe('Config.cluster tls', () => {
  let keys: string | undefined;
  let keysParent: string | undefined;
  afterAll(() => {
    if (keysParent !== undefined) rmSync(keysParent, { recursive: true, force: true });
  });
  /** A folder made by `weft keys` for 2 processes (made once for these tests). */
  const keysDir = (): string => {
    if (keys === undefined) {
      keysParent = mkdtempSync(join(tmpdir(), 'weft-config-tls-'));
      keys = join(keysParent, 'keys');
      execFileSync(process.execPath, [join(ROOT, 'bin/weft.mjs'), 'keys', keys, '-n', '2']);
    }
    return keys;
  };
  const addresses = ['127.0.0.1:1', '127.0.0.1:2'];

  it('takes PEM key, cert and ca, as given or from --tls-dir or WEFT_TLS_DIR', () => {
    const dir = keysDir();
    const files = { key: readFileSync(join(dir, 'process-1.key'), 'utf8'), cert: readFileSync(join(dir, 'process-1.crt'), 'utf8'), ca: readFileSync(join(dir, 'ca.crt'), 'utf8') };
    const given = Config.cluster({ threads: 1, process: 1, addresses, tls: files });
    expect(given.kind === 'cluster' && given.cluster.tls).toEqual(files);
    const hosts = hostfile([5001, 5002]);
    dirs.push(hosts.dir);
    const { config } = Config.fromArgs(['-n', '2', '-p', '1', '-h', hosts.path, '--tls-dir', dir]);
    expect(config.kind === 'cluster' && String(config.cluster.tls?.cert)).toBe(files.cert);
    const saved = process.env.WEFT_TLS_DIR;
    process.env.WEFT_TLS_DIR = dir;
    try {
      const c = Config.cluster({ threads: 1, process: 0, addresses });
      expect(c.kind === 'cluster' && String(c.cluster.tls?.key)).toBe(readFileSync(join(dir, 'process-0.key'), 'utf8'));
    } finally {
      if (saved === undefined) delete process.env.WEFT_TLS_DIR;
      else process.env.WEFT_TLS_DIR = saved;
    }
    const plain = Config.cluster({ threads: 1, process: 0, addresses });
    expect(plain.kind === 'cluster' && plain.cluster.tls).toBe(undefined);
  });

  it('refuses with a ConfigError: a missing field, text that is not PEM, a key that is not the certificate\'s, a folder without the files', () => {
    const dir = keysDir();
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    const good = { key: read('process-0.key'), cert: read('process-0.crt'), ca: read('ca.crt') };
    const cases: [unknown, RegExp][] = [
      [{ ...good, ca: undefined }, /tls\.ca must be PEM text \(a string or a Buffer\), got undefined/],
      [{ ...good, key: 42 }, /tls\.key must be PEM text/],
      [{ ...good, cert: 'not a certificate' }, /tls: key, cert and ca are not usable together/],
      [{ ...good, key: read('process-1.key') }, /tls: key, cert and ca are not usable together: .*key values mismatch/],
      [{ ...good, key: read('process-1.key'), cert: read('process-1.crt') }, /tls: the certificate is process 1's, this is process 0/],
    ];
    for (const [tls, message] of cases) {
      expect(() => Config.cluster({ threads: 1, process: 0, addresses, tls: tls as never })).toThrow(ConfigError);
      expect(() => Config.cluster({ threads: 1, process: 0, addresses, tls: tls as never })).toThrow(message);
    }
    const hosts = hostfile([5001, 5002]);
    dirs.push(hosts.dir);
    expect(() => Config.fromArgs(['-n', '2', '-h', hosts.path, '--tls-dir', hosts.dir])).toThrow(/tls: cannot read .*ca\.crt \(made by `weft keys/);
  });
});

describe('Config.fromArgs', () => {
  it('reads -w -n -p -h and returns the rest', () => {
    const hosts = hostfile([5001, 5002, 5003]);
    dirs.push(hosts.dir);
    const { config, rest } = Config.fromArgs(['-w', '2', 'mode', '-n', '2', '--process=1', '-h', hosts.path, '--other']);
    expect(rest).toEqual(['mode', '--other']);
    expect(config.kind === 'cluster' && config.cluster).toMatchObject({ process: 1, addresses: ['127.0.0.1:5001', '127.0.0.1:5002'] });
    expect(config.threads).toBe(2);
  });

  it('without a hostfile, process i uses 127.0.0.1 on DEFAULT_PORT + i', () => {
    const { config } = Config.fromArgs(['-n', '3', '-p', '2']);
    expect(config.kind === 'cluster' && config.cluster.addresses).toEqual([0, 1, 2].map((i) => `127.0.0.1:${DEFAULT_PORT + i}`));
  });

  it('one process without a hostfile is Config.process', () => {
    expect(Config.fromArgs(['-w', '3']).config).toMatchObject({ kind: 'process', threads: 3 });
  });

  it.each([
    ['a missing hostfile', ['-n', '2', '-h', '/no/such/hostfile'], /cannot read hostfile \/no\/such\/hostfile/],
    ['a process index out of range', ['-n', '2', '-p', '2'], /process index must be an integer from 0 to 1, got 2/],
    ['an index with one process', ['-p', '1'], /--process 1 is out of range for 1 process/],
    ['a flag without value', ['-w'], /flag -w needs a value/],
    ['a non-number', ['-n', 'two'], /flag -n needs a non-negative integer, got "two"/],
    ['zero processes', ['-n', '0'], /--processes must be a positive integer/],
  ])('refuses %s with a ConfigError', (_, argv, message) => {
    expect(() => Config.fromArgs(argv)).toThrow(ConfigError);
    expect(() => Config.fromArgs(argv)).toThrow(message);
  });

  it('reads spares from hostfile lines marked spare, and then continues past absent processes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-hosts-'));
    dirs.push(dir);
    const path = join(dir, 'hosts');
    writeFileSync(path, '# a comment\n127.0.0.1:5001\n127.0.0.1:5002   spare\n127.0.0.1:5003 spare\n');
    const { config } = Config.fromArgs(['-n', '3', '-p', '2', '-h', path]);
    expect(config.kind === 'cluster' && config.cluster).toMatchObject({ spares: [1, 2], onPeerLoss: 'continue', process: 2 });
    // Spares past -n are not part of this cluster.
    const two = Config.fromArgs(['-n', '2', '-h', path]).config;
    expect(two.kind === 'cluster' && two.cluster).toMatchObject({ spares: [1], addresses: ['127.0.0.1:5001', '127.0.0.1:5002'] });
    writeFileSync(path, '127.0.0.1:5001\n127.0.0.1:5002 spares\n');
    expect(() => Config.fromArgs(['-n', '2', '-h', path])).toThrow(/hostfile .*hosts: "127.0.0.1:5002 spares" is not "host:port" or "host:port spare"/);
    writeFileSync(path, '127.0.0.1:5001 spare\n127.0.0.1:5002\n');
    expect(() => Config.fromArgs(['-n', '2', '-h', path])).toThrow(/spares must be distinct process indices from 1 to 1 .*got \[0\]/);
  });

  it('refuses a hostfile with too few or bad addresses', () => {
    const short = hostfile([5001]);
    dirs.push(short.dir);
    expect(() => Config.fromArgs(['-n', '2', '-h', short.path])).toThrow(/lists 1 addresses for 2 processes/);
  });
});
