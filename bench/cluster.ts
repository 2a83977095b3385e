// The cluster suite: weft between two processes over TCP, beside its anchors
// measured in the same run.
//
//   bulk    1 MiB frames (codecs.typedArray(Uint8Array), 1 thread per
//           process, 8 MiB rings) against a raw Node socket between two
//           processes moving the same bytes. Target: >= 0.8 of the socket.
//           Again on default options (1 MiB rings: a 1 MiB message goes
//           through the slabs of both processes, a run of PART frames on
//           the wire; docs/cluster.md). Target: >= 0.9 of the socket.
//           Again with the receiver borrowing each message
//           (codecs.typedArray(Uint8Array, { borrow: true })): the anchor
//           only counts the bytes of its reads, while the owned row's
//           receiver allocates and fills a fresh 1 MiB array per message;
//           this row shows what the transport costs apart from that copy.
//   small   { i, x } objects per second across 2 processes (msgpack
//           batches) against process.send IPC between the bench and a forked
//           child. Target: >= 10x.
//   TLS     the same two with mutual TLS (keys from `weft keys`) against
//           weft over plain TCP in the same run: what encryption costs.
//
// Both sides are timed the same way: the receiver asks for a round and
// stops the clock at the round's last message. Round 0 is a warm-up; the
// median of the others is reported. The anchors run before and after weft,
// and their rounds are pooled.
//
//   npx tsx bench/cluster.ts            (alone)
//   npx tsx bench/cluster.ts tls        (only the TLS rows and their plain anchor)
//   WEFT_BENCH_DEFAULT_RINGS=1 npx tsx bench/cluster.ts   (every weft run on default options: 1 MiB rings)
//   npm run bench                       (with the other suites)

import { fork, spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ClusterTimes } from './fixtures/cluster-program.ts';
import { printRows, rowOf, type Row } from './report.ts';
import { freePorts } from '../src/cli/ports.ts';
import { makeKeys } from '../src/cli/keys.ts';

const MiB = 1 << 20;
const PROGRAM = fileURLToPath(new URL('./fixtures/cluster-program.ts', import.meta.url));
const ANCHOR = fileURLToPath(new URL('./fixtures/cluster-anchor.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface ClusterPlan {
  frames: number;
  frameBytes: number;
  objects: number;
  ipcObjects: number;
  rounds: number;
}

export const defaultPlan: ClusterPlan = { frames: 256, frameBytes: MiB, objects: 500_000, ipcObjects: 50_000, rounds: 5 };

export interface ClusterFigures {
  suite: 'cluster';
  rows: Row[];
  raw: { weft: ClusterTimes; tls: ClusterTimes; defaults: ClusterTimes; borrowed: ClusterTimes; rawSocketMs: number[]; ipcMs: number[]; plan: ClusterPlan };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

// The two processes listen on ports freePorts() found free a moment before;
// on a shared machine another process can take one in between (a TLS
// handshake then met a listener that was not TLS). Such a run fails while
// the mesh forms, with a ConnectError or a HandshakeError, and is run again
// on fresh ports; any other failure is the bench's to report.
const MESH_FAILURE = /\b(ConnectError|HandshakeError)\b/;
const ATTEMPTS = 3;

/** Runs the 2-process weft program (with mutual TLS when `tls`; on default options when `defaults`; the receiver borrowing its 1 MiB messages when `borrow`) and returns the receiver's times. */
export async function weft(plan: ClusterPlan, tls = false, defaults = false, borrow = false): Promise<ClusterTimes> {
  for (let attempt = 1; ; attempt++) {
    const run = await weftOnce(plan, tls, defaults, borrow);
    if (!('failed' in run)) return run;
    if (!run.meshFailed || attempt === ATTEMPTS) throw new Error(run.failed);
    console.log(`bench/cluster.ts: ${run.failed} while the mesh formed (a port taken by another process?); again on fresh ports, attempt ${attempt + 1} of ${ATTEMPTS}`);
  }
}

async function weftOnce(plan: ClusterPlan, tls: boolean, defaults: boolean, borrow: boolean): Promise<ClusterTimes | { failed: string; meshFailed: boolean }> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-'));
  try {
    const hosts = join(dir, 'hosts');
    const ports = await freePorts(2);
    writeFileSync(hosts, ports.map((p) => `127.0.0.1:${p}\n`).join(''));
    // Past weft's 30-day expiry warning, which each process would print otherwise.
    if (tls) makeKeys({ dir: join(dir, 'keys'), processes: 2, days: 60 });
    const args = [...(tls ? ['--tls-dir', join(dir, 'keys')] : []), String(plan.frames), String(plan.frameBytes), String(plan.objects), String(plan.rounds)];
    let errors = '';
    const env = { ...process.env, ...(defaults ? { WEFT_BENCH_DEFAULT_RINGS: '1' } : {}), ...(borrow ? { WEFT_BENCH_BORROW: '1' } : {}) };
    const children = [0, 1].map((i) => spawn(process.execPath, ['--import', 'tsx', PROGRAM, '-n', '2', '-p', String(i), '-w', '1', '-h', hosts, ...args], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env,
    }));
    const runs = children.map((child, i) => {
      let result: ClusterTimes | undefined;
      createInterface({ input: child.stdout! }).on('line', (l) => {
        if (l.startsWith('result ')) result = JSON.parse(l.slice(7)) as ClusterTimes;
        else console.log(`[${i}] ${l}`);
      });
      createInterface({ input: child.stderr! }).on('line', (l) => {
        errors += `${l}\n`;
        console.error(`[${i}] ${l}`);
      });
      return new Promise<ClusterTimes | undefined>((resolve, reject) => {
        child.on('close', (code) => {
          if (code === 0) resolve(result);
          else reject(new Error(`weft bench process ${i} exited with ${code}`));
        });
      });
    });
    try {
      const [, times] = await Promise.all(runs);
      if (times === undefined) throw new Error('the receiving weft process printed no result');
      return times;
    } catch (error) {
      // The other process would wait out its connect timeout: stop it now.
      for (const child of children) child.kill();
      await Promise.allSettled(runs);
      return { failed: (error as Error).message, meshFailed: MESH_FAILURE.test(errors) };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A raw socket from a child process to this one: ms per round of frames x frameBytes. */
async function rawSocket(plan: ClusterPlan): Promise<number[]> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const child = spawn(process.execPath, [ANCHOR, 'raw', String(port), String(plan.frames), String(plan.frameBytes), String(plan.rounds)], { stdio: 'inherit' });
  const socket = await new Promise<Socket>((r) => server.once('connection', r));
  socket.setNoDelay(true);
  const perRound = plan.frames * plan.frameBytes;
  const times: number[] = [];
  try {
    for (let r = 0; r <= plan.rounds; r++) {
      const t0 = performance.now();
      let got = 0;
      await new Promise<void>((resolve) => {
        const onData = (c: Buffer): void => {
          got += c.length;
          if (got >= perRound) {
            socket.off('data', onData);
            resolve();
          }
        };
        socket.on('data', onData);
        socket.write(Buffer.of(r));
      });
      if (r > 0) times.push(performance.now() - t0);
    }
  } finally {
    socket.destroy();
    server.close();
    child.kill();
  }
  return times;
}

/** process.send from a forked child to this one: ms per round of ipcObjects. */
async function ipc(plan: ClusterPlan): Promise<number[]> {
  const child = fork(ANCHOR, ['ipc', String(plan.ipcObjects)], { stdio: 'inherit', execArgv: [] });
  const times: number[] = [];
  try {
    for (let r = 0; r <= plan.rounds; r++) {
      const t0 = performance.now();
      let got = 0;
      await new Promise<void>((resolve, reject) => {
        const onMessage = (m: { i: number; x: number }): void => {
          if (m.i !== got) reject(new Error(`IPC object ${got} arrived as ${m.i}`));
          if (++got === plan.ipcObjects) {
            child.off('message', onMessage);
            resolve();
          }
        };
        child.on('message', onMessage);
        child.send(r);
      });
      if (r > 0) times.push(performance.now() - t0);
    }
  } finally {
    child.kill();
  }
  return times;
}

/** weft with TLS against weft over plain TCP, both measured here: before, between and after, pooled. */
function tlsRows(plain: ClusterTimes, tls: ClusterTimes, plan: ClusterPlan): Row[] {
  const bytes = plan.frames * plan.frameBytes;
  const bulk = (t: ClusterTimes) => bytes / MiB / (median(t.bulkMs) / 1000);
  const small = (t: ClusterTimes) => plan.objects / (median(t.smallMs) / 1000);
  return [
    rowOf({ suite: 'cluster', name: '1 MiB frames, 2 processes, mutual TLS', weft: bulk(tls), anchor: bulk(plain), anchorName: 'weft over plain TCP', unit: 'MiB/s' }),
    rowOf({ suite: 'cluster', name: '{i, x} objects, 2 processes, mutual TLS', weft: small(tls), anchor: small(plain), anchorName: 'weft over plain TCP', unit: 'msg/s' }),
  ];
}

function pool(a: ClusterTimes, b: ClusterTimes): ClusterTimes {
  return { bulkMs: [...a.bulkMs, ...b.bulkMs], smallMs: [...a.smallMs, ...b.smallMs] };
}

export async function runClusterBench(plan: ClusterPlan = defaultPlan): Promise<ClusterFigures> {
  // The anchors run before and after weft and their rounds are pooled: on a
  // shared 2-core machine the socket's rate drifts with the load, and one
  // side measured only at a quiet (or busy) moment would skew the ratio.
  // Likewise plain weft runs before and after weft with TLS.
  const rawSocketMs = await rawSocket(plan);
  const ipcMs = await ipc(plan);
  const first = await weft(plan);
  const tls = await weft(plan, true);
  const w = pool(first, await weft(plan));
  const defaults = await weft(plan, false, true);
  const borrowed = await weft(plan, false, true, true);
  rawSocketMs.push(...(await rawSocket(plan)));
  ipcMs.push(...(await ipc(plan)));
  const bytes = plan.frames * plan.frameBytes;
  const weftBulk = bytes / MiB / (median(w.bulkMs) / 1000);
  const rawBulk = bytes / MiB / (median(rawSocketMs) / 1000);
  const weftSmall = plan.objects / (median(w.smallMs) / 1000);
  const ipcSmall = plan.ipcObjects / (median(ipcMs) / 1000);
  const rows: Row[] = [
    rowOf({ suite: 'cluster', name: '1 MiB frames, 2 processes', weft: weftBulk, anchor: rawBulk, anchorName: 'raw socket, 2 processes', unit: 'MiB/s', target: 0.8 }),
    rowOf({ suite: 'cluster', name: '1 MiB messages, 2 processes, default options', weft: bytes / MiB / (median(defaults.bulkMs) / 1000), anchor: rawBulk, anchorName: 'raw socket, 2 processes', unit: 'MiB/s', target: 0.9 }),
    rowOf({ suite: 'cluster', name: '1 MiB messages, 2 processes, default options, receiver borrows', weft: bytes / MiB / (median(borrowed.bulkMs) / 1000), anchor: rawBulk, anchorName: 'raw socket, 2 processes', unit: 'MiB/s' }),
    rowOf({ suite: 'cluster', name: '{i, x} objects, 2 processes', weft: weftSmall, anchor: ipcSmall, anchorName: 'process.send IPC', unit: 'msg/s', target: 10 }),
    ...tlsRows(w, tls, plan),
  ];
  return { suite: 'cluster', rows, raw: { weft: w, tls, defaults, borrowed, rawSocketMs, ipcMs, plan } };
}

/** Only what TLS costs: plain, TLS, plain, TLS, plain, with the runs of each side pooled. */
async function runTlsBench(plan: ClusterPlan): Promise<Row[]> {
  let plain = await weft(plan);
  let tls = await weft(plan, true);
  plain = pool(plain, await weft(plan));
  tls = pool(tls, await weft(plan, true));
  plain = pool(plain, await weft(plan));
  return tlsRows(plain, tls, plan);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const rows = process.argv[2] === 'tls' ? await runTlsBench(defaultPlan) : (await runClusterBench()).rows;
  printRows(rows);
  for (const r of rows) console.log(`${r.name}: ${r.ratio.toFixed(2)}x ${r.anchorName}${r.target !== undefined ? ` (target >= ${r.target}x)` : ''}`);
}
