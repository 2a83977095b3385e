// Config.cluster and Config.fromArgs: what a cluster needs, and the clear
// ConfigError when it is wrong.

import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { Config, ConfigError } from '../../src/index.ts';
import { checkConfig, DEFAULT_PORT } from '../../src/allocator/config.ts';
import { hostfile, ROOT } from './helpers.ts';
import { forgeIdentity } from './forged.ts';
import { makeKeys, revoke } from '../../src/cli/keys.ts';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs: string[] = [];

/** Runs `fn` with these environment variables set, then puts them back. */
function withEnv(vars: Record<string, string>, fn: () => void): void {
  const saved = Object.keys(vars).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, vars);
  try {
    fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A cluster config's settings, as initialize reads them (not part of the public type). */
function clusterOf(c: Config) {
  const settings = checkConfig(c);
  if (settings.kind !== 'cluster') throw new Error(`expected a cluster config, got ${settings.kind}`);
  return settings.cluster;
}

describe('Config.cluster', () => {
  it('keeps the addresses, the index, and the defaults', () => {
    const c = Config.cluster({ threads: 2, process: 1, addresses: ['127.0.0.1:4000', '[::1]:4001'], secret: 's' });
    expect(c.threads).toBe(2);
    expect(c.processes).toBe(2);
    expect(c.process).toBe(1);
    expect(c.workers).toBe(4);
    expect(clusterOf(c)).toMatchObject({ process: 1, addresses: ['127.0.0.1:4000', '[::1]:4001'], secret: 's', heartbeatTimeoutMs: 10_000 });
  });

  it("gets the defaults docs/cluster.md's table of options gives", () => {
    const table = readFileSync(join(ROOT, 'docs/cluster.md'), 'utf8');
    const documented = (option: string): string => {
      const row = new RegExp(`^\\| \`${option}\` \\|.*\\| ([^|]+) \\|$`, 'm').exec(table);
      if (row === null) throw new Error(`docs/cluster.md has no row for ${option}`);
      return row[1]!.replaceAll('`', '').replaceAll("'", '');
    };
    const c = clusterOf(Config.cluster({ threads: 1, process: 0, addresses: ['127.0.0.1:4000'] }));
    expect(String(c.heartbeatTimeoutMs)).toBe(documented('heartbeatTimeoutMs'));
    expect(String(c.connectTimeoutMs)).toBe(documented('connectTimeoutMs'));
    expect(String(c.onPeerLoss)).toBe(documented('onPeerLoss'));
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
    ['one address twice', { threads: 1, process: 0, addresses: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:1'] }, /^cluster addresses 0 and 2 are both "127.0.0.1:1": each process listens on an address of its own$/],
  ])('refuses %s with a ConfigError', (_, o, message) => {
    expect(() => Config.cluster(o)).toThrow(ConfigError);
    expect(() => Config.cluster(o)).toThrow(message);
  });

  it('keeps spares (sorted) with onPeerLoss continue; none by default', () => {
    const addresses = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3', '127.0.0.1:4'];
    const c = Config.cluster({ threads: 1, process: 0, addresses, onPeerLoss: 'continue', spares: [3, 1] });
    expect(clusterOf(c).spares).toEqual([1, 3]);
    const plain = Config.cluster({ threads: 1, process: 0, addresses });
    expect(clusterOf(plain).spares).toEqual([]);
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

  it.each([
    ['an unknown option', { heartbeatTimeout: 5000 }, /^Config\.cluster's options has no field "heartbeatTimeout"; its fields are ringBytes, .*, onPeerLoss, spares, replaces, tls$/],
    ['onPeerLoss given a wrong value', { onPeerLoss: 'ignore' }, /^onPeerLoss \(--on-peer-loss, WEFT_ON_PEER_LOSS\) must be 'abort' or 'continue', got "ignore"$/],
    ['heartbeatTimeoutMs that is not a number', { heartbeatTimeoutMs: '3000' }, /^heartbeatTimeoutMs \(--heartbeat-timeout, WEFT_HEARTBEAT_TIMEOUT_MS\) must be an integer number of ms from 150 to 2147483647, got "3000"$/],
    ['heartbeatTimeoutMs of a fraction', { heartbeatTimeoutMs: 2500.5 }, /^heartbeatTimeoutMs .* got 2500.5$/],
    ['connectTimeoutMs below 1', { connectTimeoutMs: 0 }, /^connectTimeoutMs \(--connect-timeout, WEFT_CONNECT_TIMEOUT_MS\) must be an integer number of ms from 1 to 2147483647, got 0$/],
    ['connectTimeoutMs past what a timer keeps', { connectTimeoutMs: 2 ** 31 }, /^connectTimeoutMs .* got 2147483648$/],
  ])('refuses %s with a ConfigError naming it', (_, o, message) => {
    const given = { threads: 1, process: 0, addresses: ['127.0.0.1:1'], ...o } as Parameters<typeof Config.cluster>[0];
    expect(() => Config.cluster(given)).toThrow(ConfigError);
    expect(() => Config.cluster(given)).toThrow(message);
  });

  it('refuses a cluster option given to Config.process or Config.thread, saying where it belongs', () => {
    expect(() => Config.process(2, { onPeerLoss: 'continue' } as never)).toThrow(/^Config\.process's options has no field "onPeerLoss": it is a cluster option, given to Config\.cluster\(\{ \.\.\. \}\) \(config\.cluster\); its fields are ringBytes, maxMessageBytes, highWaterBytes, maxBacklogBytes, slabBytes$/);
    expect(() => Config.thread({ ringbytes: 1 << 16 } as never)).toThrow(/^Config\.thread's options has no field "ringbytes"; its fields are ringBytes/);
  });

  it('keeps replaces, the lost process whose index and place this one takes; none by default', () => {
    const addresses = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3', '127.0.0.1:4'];
    const c = Config.cluster({ threads: 1, process: 3, addresses, replaces: 1 });
    expect(clusterOf(c)).toMatchObject({ process: 3, replaces: 1 });
    expect(clusterOf(Config.cluster({ threads: 1, process: 3, addresses }))).toMatchObject({ replaces: undefined });
  });

  it.each([
    ['an index out of range', { process: 2, replaces: 3 }, /^replaces \(--replaces\) must be the index of another process, from 1 to 2 \(process 0 is never replaced\), not this process's own \(2\), got 3$/],
    ['process 0 as the one replaced', { process: 2, replaces: 0 }, /from 1 to 2 .*got 0$/],
    ['its own index', { process: 2, replaces: 2 }, /not this process's own \(2\), got 2$/],
    ['a non-integer', { process: 2, replaces: '1' }, /got "1"$/],
    ['process 0 replacing another', { process: 0, replaces: 1 }, /^process 0 cannot replace another \(it orchestrates and is never a spare\), got replaces 1$/],
  ])('refuses replaces of %s with a ConfigError naming the option', (_, o, message) => {
    const given = { threads: 1, addresses: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'], ...o } as Parameters<typeof Config.cluster>[0];
    expect(() => Config.cluster(given)).toThrow(ConfigError);
    expect(() => Config.cluster(given)).toThrow(message);
  });

  it('takes the secret from WEFT_SECRET when none is given', () => {
    const saved = process.env.WEFT_SECRET;
    process.env.WEFT_SECRET = 'from the environment';
    try {
      const c = Config.cluster({ threads: 1, process: 0, addresses: ['127.0.0.1:1'] });
      expect(clusterOf(c).secret).toBe('from the environment');
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
    expect(clusterOf(given).tls).toEqual(files);
    const hosts = hostfile([5001, 5002]);
    dirs.push(hosts.dir);
    const { config } = Config.fromArgs(['-n', '2', '-p', '1', '-h', hosts.path, '--tls-dir', dir]);
    expect(String(clusterOf(config).tls?.cert)).toBe(files.cert);
    const saved = process.env.WEFT_TLS_DIR;
    process.env.WEFT_TLS_DIR = dir;
    try {
      const c = Config.cluster({ threads: 1, process: 0, addresses });
      expect(String(clusterOf(c).tls?.key)).toBe(readFileSync(join(dir, 'process-0.key'), 'utf8'));
    } finally {
      if (saved === undefined) delete process.env.WEFT_TLS_DIR;
      else process.env.WEFT_TLS_DIR = saved;
    }
    const plain = Config.cluster({ threads: 1, process: 0, addresses });
    expect(clusterOf(plain).tls).toBe(undefined);
  });

  it('a replacement shows the certificate of the process it replaces: --tls-dir loads it, and its own is refused', () => {
    const parent = mkdtempSync(join(tmpdir(), 'weft-config-replaces-'));
    dirs.push(parent);
    const dir = join(parent, 'keys');
    execFileSync(process.execPath, [join(ROOT, 'bin/weft.mjs'), 'keys', dir, '-n', '3']);
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    const hosts = hostfile([5001, 5002, 5003]);
    dirs.push(hosts.dir);
    const { config } = Config.fromArgs(['-n', '3', '-p', '2', '--replaces', '1', '-h', hosts.path, '--tls-dir', dir]);
    expect(String(clusterOf(config).tls?.cert)).toBe(read('process-1.crt'));
    const own = { key: read('process-2.key'), cert: read('process-2.crt'), ca: read('ca.crt') };
    const three = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'];
    expect(() => Config.cluster({ threads: 1, process: 2, replaces: 1, addresses: three, tls: own })).toThrow(/^tls: tls\.cert: the certificate is process 2's, this is process 1$/);
  });

  it('refuses with a ConfigError naming the field and the reason: a missing field, text that is not PEM, a key that is not the certificate\'s, a folder without the files', () => {
    const dir = keysDir();
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    const good = { key: read('process-0.key'), cert: read('process-0.crt'), ca: read('ca.crt') };
    const ca = { key: read('ca.key'), cert: read('ca.crt') };
    const name = 'weft process 0';
    const cases: [unknown, RegExp][] = [
      [{ ...good, ca: undefined }, /tls\.ca must be PEM text \(a string or a Buffer\), got undefined/],
      [{ ...good, key: 42 }, /tls\.key must be PEM text/],
      [{ ...good, crl: 42 }, /tls\.crl must be PEM text \(a string or a Buffer\) or absent, got number/],
      [{ ...good, cert: 'not a certificate' }, /^tls: tls\.cert: not a readable certificate: /],
      [{ ...good, ca: 'not a CA' }, /^tls: tls\.ca: not a PEM certificate/],
      [{ ...good, ca: read('process-1.crt') }, /^tls: tls\.ca: CN=weft process 1 is not a CA certificate$/],
      [{ ...good, key: 'not a key' }, /^tls: tls\.key: not a readable private key: /],
      [{ ...good, key: read('process-1.key') }, /^tls: tls\.key: not the key of tls\.cert$/],
      [{ ...good, key: read('process-1.key'), cert: read('process-1.crt') }, /^tls: tls\.cert: the certificate is process 1's, this is process 0$/],
      [{ ...good, ...forgeIdentity({ name, issuer: ca, from: -30, to: -1 }) }, /^tls: tls\.cert: certificate expired on \w{3} +\d+ [\d:]+ \d{4} GMT$/],
      [{ ...good, ...forgeIdentity({ name, issuer: ca, from: 2, to: 30 }) }, /^tls: tls\.cert: certificate not valid before \w{3} +\d+ [\d:]+ \d{4} GMT$/],
      [{ ...good, ...forgeIdentity({ name, issuer: forgeIdentity({ name: 'another CA', ca: true }) }) }, /^tls: tls\.cert: certificate not signed by the cluster CA$/],
      [{ ...good, ...forgeIdentity({ name }) }, /^tls: tls\.cert: certificate not signed by the cluster CA$/],
      [{ ...good, ...ca }, /^tls: tls\.cert: a CA certificate, not a process's$/],
      [{ ...good, crl: 'not a list' }, /^tls: tls\.crl: not a PEM CRL/],
      [{ ...good, crl: '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n' }, /^tls: tls\.crl: not a readable CRL/],
    ];
    for (const [tls, message] of cases) {
      expect(() => Config.cluster({ threads: 1, process: 0, addresses, tls: tls as never })).toThrow(ConfigError);
      expect(() => Config.cluster({ threads: 1, process: 0, addresses, tls: tls as never })).toThrow(message);
    }
    const hosts = hostfile([5001, 5002]);
    dirs.push(hosts.dir);
    expect(() => Config.fromArgs(['-n', '2', '-h', hosts.path, '--tls-dir', hosts.dir])).toThrow(/tls: cannot read .*ca\.crt \(made by `weft keys/);
  }, 120_000); // RSA keys made under load
});

describe('Config.cluster tls: checked up front', () => {
  let parent = '';
  afterAll(() => rmSync(parent, { recursive: true, force: true }));
  /** A fresh folder made by `weft keys` for 2 processes. */
  const keys = (): string => {
    parent ||= mkdtempSync(join(tmpdir(), 'weft-config-tls-checks-'));
    const dir = mkdtempSync(join(parent, 'keys-'));
    makeKeys({ dir, processes: 2, days: 365 });
    return dir;
  };
  const addresses = ['127.0.0.1:1', '127.0.0.1:2'];
  const fromDir = (dir: string, process: number) => {
    const hosts = hostfile([5001, 5002]);
    dirs.push(hosts.dir);
    return Config.fromArgs(['-n', '2', '-p', String(process), '-h', hosts.path, '--tls-dir', dir]).config;
  };

  it('names the file that is wrong in a --tls-dir folder, and why', () => {
    const dir = keys();
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    const expired = forgeIdentity({ name: 'weft process 0', issuer: { key: read('ca.key'), cert: read('ca.crt') }, from: -30, to: -1 });
    writeFileSync(join(dir, 'process-0.crt'), expired.cert);
    writeFileSync(join(dir, 'process-0.key'), expired.key);
    expect(() => fromDir(dir, 0)).toThrow(ConfigError);
    expect(() => fromDir(dir, 0)).toThrow(new RegExp(`^tls: ${join(dir, 'process-0.crt')}: certificate expired on `));
    writeFileSync(join(dir, 'process-1.key'), read('ca.key'));
    expect(() => fromDir(dir, 1)).toThrow(new RegExp(`^tls: ${join(dir, 'process-1.key')}: not the key of ${join(dir, 'process-1.crt')}$`));
  }, 120_000); // RSA keys made under load

  it('loads the CRL weft keys revoke wrote: the revoked process is refused at its config, the others carry the list', () => {
    const dir = keys();
    revoke(dir, 1);
    expect(() => fromDir(dir, 1)).toThrow(new RegExp(`^tls: ${join(dir, 'process-1.crt')}: certificate revoked on `));
    const zero = fromDir(dir, 0);
    expect(String(clusterOf(zero).tls?.crl)).toBe(readFileSync(join(dir, 'crl.pem'), 'utf8'));
    // Another cluster's list is not this CA's.
    const other = keys();
    revoke(other, 0);
    writeFileSync(join(dir, 'crl.pem'), readFileSync(join(other, 'crl.pem')));
    expect(() => fromDir(dir, 0)).toThrow(new RegExp(`^tls: ${join(dir, 'crl.pem')}: not signed by the cluster CA$`));
  }, 120_000); // RSA keys made under load

  it('warns when the certificate expires within 30 days', async () => {
    const dir = keys();
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    const soon = forgeIdentity({ name: 'weft process 0', issuer: { key: read('ca.key'), cert: read('ca.crt') }, to: 10 });
    // The test takes the warning in place of Node's own listener, which
    // would print it on the suite's stderr; that listener is put back after.
    const printers = process.listeners('warning');
    process.removeAllListeners('warning');
    let warning: Error;
    try {
      const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
      Config.cluster({ threads: 1, process: 0, addresses, tls: { ...soon, ca: read('ca.crt') } });
      warning = await warned;
    } finally {
      for (const printer of printers) process.on('warning', printer);
    }
    expect(warning.name).toBe('WeftWarning');
    expect(warning.message).toMatch(/^tls: tls\.cert expires on \w{3} +\d+ [\d:]+ \d{4} GMT \(in (9|10) days\): make new keys before then/);
  }, 120_000); // RSA keys made under load
});

describe('Config.fromArgs', () => {
  it.each([
    ['a string', '-w 2', /^Config.fromArgs takes the command line as an array of strings \(process.argv.slice\(2\)\), got "-w 2"$/],
    ['an array holding a number', ['-w', 2], /as an array of strings.*got -w,2$/],
  ])('refuses a command line given as %s with a ConfigError', (_, argv, message) => {
    expect(() => Config.fromArgs(argv as never)).toThrow(ConfigError);
    expect(() => Config.fromArgs(argv as never)).toThrow(message);
  });

  it('reads -w -n -p -h and returns the rest', () => {
    const hosts = hostfile([5001, 5002, 5003]);
    dirs.push(hosts.dir);
    const { config, rest } = Config.fromArgs(['-w', '2', 'mode', '-n', '2', '--process=1', '-h', hosts.path, '--other']);
    expect(rest).toEqual(['mode', '--other']);
    expect(clusterOf(config)).toMatchObject({ process: 1, addresses: ['127.0.0.1:5001', '127.0.0.1:5002'] });
    expect(config.threads).toBe(2);
  });

  it('without a hostfile, process i uses 127.0.0.1 on DEFAULT_PORT + i', () => {
    const { config } = Config.fromArgs(['-n', '3', '-p', '2']);
    expect(clusterOf(config).addresses).toEqual([0, 1, 2].map((i) => `127.0.0.1:${DEFAULT_PORT + i}`));
  });

  it('one process without a hostfile is Config.process', () => {
    expect(checkConfig(Config.fromArgs(['-w', '3']).config)).toMatchObject({ kind: 'process', threads: 3 });
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

  it('reads --replaces <k>; an unknown index is a ConfigError', () => {
    const { config, rest } = Config.fromArgs(['-n', '3', '-p', '2', '--replaces', '1', 'mode']);
    expect(rest).toEqual(['mode']);
    expect(clusterOf(config)).toMatchObject({ process: 2, replaces: 1 });
    expect(() => Config.fromArgs(['-n', '3', '-p', '2', '--replaces=5'])).toThrow(/^replaces \(--replaces\) must be the index of another process, from 1 to 2 .*got 5$/);
  });

  it('reads spares from hostfile lines marked spare, and then continues past absent processes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-hosts-'));
    dirs.push(dir);
    const path = join(dir, 'hosts');
    writeFileSync(path, '# a comment\n127.0.0.1:5001\n127.0.0.1:5002   spare\n127.0.0.1:5003 spare\n');
    const { config } = Config.fromArgs(['-n', '3', '-p', '2', '-h', path]);
    expect(clusterOf(config)).toMatchObject({ spares: [1, 2], onPeerLoss: 'continue', process: 2 });
    // Spares past -n are not part of this cluster.
    const two = Config.fromArgs(['-n', '2', '-h', path]).config;
    expect(clusterOf(two)).toMatchObject({ spares: [1], addresses: ['127.0.0.1:5001', '127.0.0.1:5002'] });
    writeFileSync(path, '127.0.0.1:5001\n127.0.0.1:5002 spares\n');
    expect(() => Config.fromArgs(['-n', '2', '-h', path])).toThrow(/hostfile .*hosts: "127.0.0.1:5002 spares" is not "host:port" or "host:port spare"/);
    writeFileSync(path, '127.0.0.1:5001 spare\n127.0.0.1:5002\n');
    expect(() => Config.fromArgs(['-n', '2', '-h', path])).toThrow(/spares must be distinct process indices from 1 to 1 .*got \[0\]/);
  });

  it('reads --on-peer-loss, --heartbeat-timeout and --connect-timeout, or their environment variables; a given option wins over the environment', () => {
    const { config } = Config.fromArgs(['-n', '2', '--on-peer-loss', 'continue', '--heartbeat-timeout', '5000', '--connect-timeout=1000', 'mode']);
    expect(clusterOf(config)).toMatchObject({ onPeerLoss: 'continue', heartbeatTimeoutMs: 5000, connectTimeoutMs: 1000 });
    const defaults = Config.fromArgs(['-n', '2']).config;
    expect(clusterOf(defaults)).toMatchObject({ onPeerLoss: 'abort', heartbeatTimeoutMs: 10_000, connectTimeoutMs: 30_000 });
    withEnv({ WEFT_ON_PEER_LOSS: 'continue', WEFT_HEARTBEAT_TIMEOUT_MS: '7000', WEFT_CONNECT_TIMEOUT_MS: '2000' }, () => {
      const env = Config.fromArgs(['-n', '2']).config;
      expect(clusterOf(env)).toMatchObject({ onPeerLoss: 'continue', heartbeatTimeoutMs: 7000, connectTimeoutMs: 2000 });
      const flag = Config.fromArgs(['-n', '2', '--heartbeat-timeout', '4000', '--on-peer-loss', 'abort']).config;
      expect(clusterOf(flag)).toMatchObject({ onPeerLoss: 'abort', heartbeatTimeoutMs: 4000, connectTimeoutMs: 2000 });
      const given = Config.cluster({ threads: 1, process: 0, addresses: ['127.0.0.1:1'], heartbeatTimeoutMs: 9000 });
      expect(clusterOf(given).heartbeatTimeoutMs).toBe(9000);
      // The program's own options to fromArgs win over flags and environment alike, and leave the rest to them.
      const own = Config.fromArgs(['-n', '2', '-p', '1', '--heartbeat-timeout', '4000'], { heartbeatTimeoutMs: 9000, ringBytes: 1 << 16 }).config;
      expect(clusterOf(own)).toMatchObject({ process: 1, onPeerLoss: 'continue', heartbeatTimeoutMs: 9000, connectTimeoutMs: 2000 });
      expect(checkConfig(own).options.ringBytes).toBe(1 << 16);
      expect([own.threads, own.processes, own.process, own.workers]).toEqual([1, 2, 1, 2]);
    });
    // The cluster options apply only where the flags make a cluster; the others apply to one process too.
    const one = checkConfig(Config.fromArgs(['-w', '2'], { onPeerLoss: 'continue', ringBytes: 1 << 16 }).config);
    expect(one).toMatchObject({ kind: 'process', threads: 2, options: { ringBytes: 1 << 16 } });
  });

  it.each([
    ['an unknown --on-peer-loss', ['--on-peer-loss', 'maybe'], /^onPeerLoss \(--on-peer-loss, WEFT_ON_PEER_LOSS\) must be 'abort' or 'continue', got "maybe"$/],
    ['--on-peer-loss without a value', ['--on-peer-loss'], /^flag --on-peer-loss needs a value$/],
    ['a --heartbeat-timeout that is not a number', ['--heartbeat-timeout', 'soon'], /^flag --heartbeat-timeout needs a non-negative integer, got "soon"$/],
    ['a --heartbeat-timeout too short', ['--heartbeat-timeout', '10'], /^heartbeatTimeoutMs \(--heartbeat-timeout, WEFT_HEARTBEAT_TIMEOUT_MS\) must be an integer number of ms from 150 to 2147483647, got 10$/],
    ['a --connect-timeout of 0', ['--connect-timeout=0'], /^connectTimeoutMs \(--connect-timeout, WEFT_CONNECT_TIMEOUT_MS\) must be an integer number of ms from 1 to 2147483647, got 0$/],
    ['a --connect-timeout past what a timer keeps', ['--connect-timeout', '4294967296'], /connectTimeoutMs .* from 1 to 2147483647, got 4294967296$/],
    ['--on-peer-loss abort with spares in the hostfile', ['--on-peer-loss', 'abort', '-h', 'SPARES'], /spares \[1\] need onPeerLoss: 'continue'/],
  ])('refuses %s with a ConfigError naming the flag', (_, flags, message) => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-hosts-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'hosts'), '127.0.0.1:5001\n127.0.0.1:5002 spare\n');
    const argv = ['-n', '2', ...flags.map((f) => (f === 'SPARES' ? join(dir, 'hosts') : f))];
    expect(() => Config.fromArgs(argv)).toThrow(ConfigError);
    expect(() => Config.fromArgs(argv)).toThrow(message);
  });

  it.each([
    ['WEFT_ON_PEER_LOSS', 'sometimes', /^onPeerLoss \(--on-peer-loss, WEFT_ON_PEER_LOSS\) must be 'abort' or 'continue', got "sometimes"$/],
    ['WEFT_HEARTBEAT_TIMEOUT_MS', '3s', /^heartbeatTimeoutMs \(--heartbeat-timeout, WEFT_HEARTBEAT_TIMEOUT_MS\) must be .*, got "3s"$/],
    ['WEFT_HEARTBEAT_TIMEOUT_MS', '100', /^heartbeatTimeoutMs .* from 150 to 2147483647, got 100$/],
    ['WEFT_CONNECT_TIMEOUT_MS', '-1', /^connectTimeoutMs \(--connect-timeout, WEFT_CONNECT_TIMEOUT_MS\) must be .*, got "-1"$/],
  ])('refuses %s=%s with a ConfigError naming the variable', (name, value, message) => {
    withEnv({ [name]: value }, () => {
      expect(() => Config.fromArgs(['-n', '2'])).toThrow(ConfigError);
      expect(() => Config.cluster({ threads: 1, process: 0, addresses: ['127.0.0.1:1'] })).toThrow(message);
    });
  });

  it('refuses a hostfile with too few or bad addresses', () => {
    const short = hostfile([5001]);
    dirs.push(short.dir);
    expect(() => Config.fromArgs(['-n', '2', '-h', short.path])).toThrow(/lists 1 addresses for 2 processes/);
  });
});
