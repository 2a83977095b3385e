// Small objects between two processes: weft (the cluster suite's program:
// { i, x } objects, msgpack batches over TCP, a spinning receiver) beside
// the peers users pick for it, in one run: NATS (core, its own nats-server)
// and ZeroMQ (PUSH/PULL over TCP), one msgpack-encoded message per object.
// Target: weft >= 5x the best of them. Each side: round 0 warms up, the
// median of the other rounds is reported; the peers run before and after
// weft and their rounds are pooled.
//
//   npx tsx bench/peers.ts     (alone)
//   npm run bench              (with the other suites)

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { unpack } from 'msgpackr';
import { weft } from './cluster.ts';
import { printRows, rowOf, type Row } from './report.ts';
import { nats } from './services.ts';

const SENDER = fileURLToPath(new URL('./fixtures/peers-sender.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PEER_OBJECTS = 100_000;
const WEFT_OBJECTS = 500_000;
const ROUNDS = 5;

export interface PeersFigures {
  suite: 'peers';
  rows: Row[];
  notes: string[];
  raw: { weftMs: number[]; natsMs: number[]; zmqMs: number[] };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function sender(mode: string, port: number): Promise<ChildProcess> {
  const child = fork(SENDER, [mode, String(port), String(PEER_OBJECTS)], { cwd: ROOT, stdio: 'inherit', execArgv: [] });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`the ${mode} sender exited with ${code}`)));
  });
}

/** ms per round: asks the sender for a round and waits until every object arrived, in order. */
async function rounds(child: ChildProcess, listen: (onObject: ((i: number) => void) | undefined) => void): Promise<number[]> {
  const times: number[] = [];
  for (let r = 0; r <= ROUNDS; r++) {
    const t0 = performance.now();
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      listen((i) => {
        if (i !== got) reject(new Error(`object ${got} arrived as ${i}`));
        if (++got === PEER_OBJECTS) {
          listen(undefined);
          resolve();
        }
      });
      child.send(r);
    });
    if (r > 0) times.push(performance.now() - t0);
  }
  return times;
}

/** A peer's receiving end in this process: the port its sender reaches, and how to close it. */
interface Receiver {
  port: number;
  close(): Promise<void>;
}

/** The rounds of one peer: `open` starts its receiver, which hands each object's index to `deliver`. */
async function peerRounds(mode: 'nats' | 'zmq', open: (deliver: (i: number) => void) => Promise<Receiver>): Promise<number[]> {
  let onObject: ((i: number) => void) | undefined;
  const receiver = await open((i) => onObject?.(i));
  try {
    const child = await sender(mode, receiver.port);
    try {
      return await rounds(child, (f) => (onObject = f));
    } finally {
      child.kill();
    }
  } finally {
    await receiver.close();
  }
}

async function natsRounds(): Promise<number[] | string> {
  const started = nats();
  if (typeof started === 'string') return started;
  const server = await started;
  try {
    const { connect } = await import('nats');
    return await peerRounds('nats', async (deliver) => {
      const nc = await connect({ servers: `127.0.0.1:${server.port}` });
      nc.subscribe('weft.bench', { callback: (_error, message) => deliver((unpack(message.data) as { i: number }).i) });
      await nc.flush();
      return { port: server.port, close: () => nc.close() };
    });
  } finally {
    await server.stop();
  }
}

async function zmqRounds(): Promise<number[]> {
  const { Pull } = await import('zeromq');
  return peerRounds('zmq', async (deliver) => {
    const pull = new Pull();
    // Port *: the system picks a free one at bind time, so no other process can take it first.
    await pull.bind('tcp://127.0.0.1:*');
    const port = Number(/:(\d+)$/.exec(pull.lastEndpoint ?? '')?.[1]);
    const reading = (async () => {
      for await (const [message] of pull) deliver((unpack(message!) as { i: number }).i);
    })();
    return {
      port,
      close: async () => {
        pull.close();
        await reading.catch(() => {});
      },
    };
  });
}

export async function runPeersBench(): Promise<PeersFigures> {
  const notes: string[] = [];
  const say = (line: string) => console.log(`bench/peers.ts: ${line}`);
  const natsFirst = await natsRounds();
  const zmqMs = await zmqRounds();
  const weftMs = (await weft({ frames: 1, frameBytes: 1 << 20, objects: WEFT_OBJECTS, ipcObjects: 0, rounds: ROUNDS })).smallMs;
  const natsSecond = await natsRounds();
  zmqMs.push(...(await zmqRounds()));
  const natsMs = typeof natsFirst === 'string' || typeof natsSecond === 'string' ? [] : [...natsFirst, ...natsSecond];
  if (typeof natsFirst === 'string') {
    say(natsFirst);
    notes.push(`bench/peers.ts: NATS: ${natsFirst}`);
  }
  const rate = (objects: number, ms: number[]) => objects / (median(ms) / 1000);
  const weftRate = rate(WEFT_OBJECTS, weftMs);
  const peers: [string, number][] = [['ZeroMQ 6 PUSH/PULL, 1 msg/object', rate(PEER_OBJECTS, zmqMs)]];
  if (natsMs.length > 0) peers.push(['NATS 2 core, 1 msg/object', rate(PEER_OBJECTS, natsMs)]);
  for (const [name, value] of peers) say(`${name}: ${value.toFixed(0)} msg/s`);
  const [bestName, best] = peers.reduce((a, b) => (b[1] > a[1] ? b : a));
  const rows: Row[] = [
    rowOf({ suite: 'peers', name: '{i, x} objects, 2 processes, batched vs 1 msg/object', weft: weftRate, anchor: best, anchorName: `best peer: ${bestName}`, unit: 'msg/s', target: 5 }),
  ];
  return { suite: 'peers', rows, notes, raw: { weftMs, natsMs, zmqMs } };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  printRows((await runPeersBench()).rows);
  setTimeout(() => process.exit(), 100).unref();
}
