// Mutual TLS: `weft keys` makes a CA and per-process keys; a cluster started
// with them works (weft launch --tls-dir); a peer with a certificate of
// another CA, with another process's certificate, or without TLS, is
// refused at once with a reason, and the cluster then completes with the
// right peer.

import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as connectTls } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, hostfile, killAll, PROGRAM, refusalsLogged, ROOT, run, runProcess, type Running } from './helpers.ts';
import { MAGIC_REFUSE, Stranger, hello, shape } from './stranger.ts';

const weft = (args: string[]) => run(join(ROOT, 'bin/weft.mjs'), args);
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tls-'));
  dirs.push(dir);
  return dir;
}

async function keys(processes: number): Promise<string> {
  const dir = join(folder(), 'keys');
  const made = weft(['keys', dir, '-n', String(processes)]);
  const { code } = await made.exited;
  expect(code, made.stderr.join('\n')).toBe(0);
  return dir;
}

describe('mutual TLS', () => {
  it('weft keys writes a CA and a key and certificate per process (keys private), and will not overwrite them', async () => {
    const dir = await keys(3);
    for (const name of ['ca.crt', 'process-0.crt', 'process-2.crt']) expect(statSync(join(dir, name)).mode & 0o777).toBe(0o644);
    for (const name of ['ca.key', 'process-0.key', 'process-2.key']) expect(statSync(join(dir, name)).mode & 0o777).toBe(0o600);
    const again = weft(['keys', dir, '-n', '3']);
    const { code } = await again.exited;
    expect(code).toBe(1);
    expect(again.stderr.join('\n')).toMatch(/ca\.key.* already exist; remove them or choose another folder/);
  });

  it('weft launch --tls-dir: 3 processes x 2 threads exchange over TLS, every process exits 0', async () => {
    const dir = await keys(3);
    const cluster = weft(['launch', '-n', '3', '-w', '2', '--tls-dir', dir, PROGRAM, 'exchange']);
    const { code } = await cluster.exited;
    const detail = `stdout:\n${cluster.stdout.join('\n')}\nstderr:\n${cluster.stderr.join('\n')}`;
    expect(code, detail).toBe(0);
    const perWorker = Array.from({ length: 6 }, () => 20_000);
    for (let i = 0; i < 3; i++) expect(cluster.stdout, detail).toContain(`[${i}] result ${JSON.stringify([perWorker, perWorker])}`);
    expect(cluster.stderr, detail).toEqual([expect.stringMatching(/^weft: launching 3 processes x 2 threads of .* with mutual TLS$/)]);
  });

  it('weft launch --tls-dir with a folder that lacks the files: one clear error, nothing started', async () => {
    const cluster = weft(['launch', '-n', '2', '--tls-dir', folder(), PROGRAM, 'idle']);
    const { code } = await cluster.exited;
    expect(code).toBe(2);
    expect(cluster.stderr.join('\n')).toMatch(/weft launch: tls: cannot read .*ca\.crt \(made by `weft keys/);
  });

  it('refused at once: a certificate of another CA, another process\'s certificate, no TLS; then the right process 1 joins and the cluster completes', async () => {
    const [ours, theirs] = [await keys(2), await keys(2)];
    const ports = await freePorts(2);
    const hosts = hostfile(ports);
    dirs.push(hosts.dir);
    const go = join(hosts.dir, 'go');
    const p0 = runProcess(0, 2, 1, hosts.path, ['--tls-dir', ours, 'gated', go]);
    started.push(p0);
    // A stranger that says nothing is closed at the handshake deadline.
    const silent = await Stranger.connect(ports[0]!);
    const attempts: [string[], RegExp][] = [
      [['--tls-dir', theirs], /ConnectError: process 1 cannot join process 0 at .*: TLS: refused the listener: certificate not signed by the cluster CA/],
      [[], /ConnectError: .*the peer refused the connection: this cluster requires mutual TLS: the peer does not speak TLS/],
    ];
    for (const [flags, error] of attempts) {
      const p1 = runProcess(1, 2, 1, hosts.path, [...flags, 'gated', go]);
      started.push(p1);
      const { code } = await p1.exited;
      expect(code).not.toBe(0);
      expect(p1.stderr.join('\n')).toMatch(error);
    }
    // Process 0's own key and certificate (Config refuses them for process
    // 1, so a hand-made client presents them) claiming to be process 1.
    const borrowed = await new Promise<Stranger>((resolve, reject) => {
      const read = (name: string) => readFileSync(join(ours, name));
      const s = connectTls({ host: '127.0.0.1', port: ports[0]!, key: read('process-0.key'), cert: read('process-0.crt'), ca: read('ca.crt'), checkServerIdentity: () => undefined });
      s.once('secureConnect', () => resolve(new Stranger(s)));
      s.once('error', reject);
    });
    borrowed.write(Buffer.concat([hello({ secret: false }), shape({ sender: 1, receiver: 0, threads: 1 })]));
    // Refused before process 0's HELLO: a certificate for process 0 never dials process 0.
    expect(await borrowed.refused()).toBe('its certificate is for process 0, which does not dial process 0');
    expect(borrowed.all().readUInt32LE(0)).toBe(MAGIC_REFUSE);
    expect(await p0.errLine(/refused a connection from/)).toBeDefined();
    await silent.closed;
    expect(silent.all().length).toBe(0);
    expect(p0.child.exitCode).toBe(null);

    const p1 = runProcess(1, 2, 1, hosts.path, ['--tls-dir', ours, 'gated', go]);
    started.push(p1);
    writeFileSync(go, '');
    for (const p of [p0, p1]) {
      const { code } = await p.exited;
      expect(code, p.stderr.join('\n')).toBe(0);
      expect(p.stdout).toContain('result [500500]');
    }
    // Process 0 reported the four refusals: the first at once, the rest in
    // summary lines (one per 10 s: a loaded machine may spread them over two).
    expect(refusalsLogged(p0.stderr), p0.stderr.join('\n')).toBe(4);
  }, 120_000); // five processes started one after another

  it('a TLS process dialling a plain cluster fails at once with the TLS error', async () => {
    const dir = await keys(2);
    const hosts = hostfile(await freePorts(2));
    dirs.push(hosts.dir);
    const p0 = runProcess(0, 2, 1, hosts.path, ['hang']);
    const p1 = runProcess(1, 2, 1, hosts.path, ['--tls-dir', dir, 'hang']);
    started.push(p0, p1);
    const { code } = await p1.exited;
    expect(code).not.toBe(0);
    expect(p1.stderr.join('\n')).toMatch(/ConnectError: process 1 cannot join process 0 at .*: TLS: /);
    expect(await p0.errLine(/refused a connection from .*bad magic 0x[0-9a-f]{2}010316: not a weft peer/)).toBeDefined();
  });
});
