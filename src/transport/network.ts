// A cluster process's network thread: its listener and sockets, its router
// and its heartbeats run here, on a thread of their own (as timely gives its
// network threads of their own), so nothing the main thread runs (the
// program's code after initialize, a runtime's orchestrator, a monoid's
// combine) can delay a frame or a heartbeat. The thread talks to the
// workers exactly as the router always did, through their rings and
// doorbells in shared memory; losses and joins go straight into the control
// cells the workers read. Only what the main thread must act on crosses as
// a message (NetworkEvent): the mesh is up, the run failed, finish()
// settled. The main thread's side is src/allocator/cluster.ts, which starts
// this thread and waits for `connected` before it starts any worker.

import { parentPort } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { connectMesh, type Mesh, type MeshOptions } from './mesh.ts';
import { Router } from './router.ts';
import { Control } from './control.ts';
import { Doorbell } from './doorbell.ts';
import { RingReader, RingWriter } from './ring.ts';
import { SlabReader, SlabWriter } from './slab.ts';
import { HIGH_WATER } from './router-peer.ts';
import { LinkCounters } from './link-counters.ts';
import type { DecoderLimits } from './decoder.ts';
import { ConfigError, ConnectError, PeerError, ProtocolError, WeftError } from '../errors.ts';

/** What the network thread is started with (workerData.weft). */
export interface NetworkBoot {
  mesh: Omit<MeshOptions, 'log'>;
  heartbeatTimeoutMs: number;
  /** onPeerLoss 'continue': a lost peer is recorded in the control cells, not a failure. */
  continueOnLoss: boolean;
  limits: DecoderLimits;
  control: SharedArrayBuffer;
  /** Every doorbell of the process (the workers' and the router's), rung on a loss or a join. */
  bells: SharedArrayBuffer[];
  routerBell: SharedArrayBuffer;
  /** Per local worker: its doorbell, the ring it writes remote frames into, the ring the router fills. */
  workerBells: SharedArrayBuffer[];
  fromWorkers: SharedArrayBuffer[];
  toWorkers: SharedArrayBuffer[];
  /** The link counters the workers read (link-counters.ts). */
  links: SharedArrayBuffer;
  /** The router's slab (wiring.ts), when slabBytes is not 0. */
  slab?: SharedArrayBuffer;
  /** Per local worker: its slab (its large batches for peers are there). */
  workerSlabs: (SharedArrayBuffer | undefined)[];
}

/** From the main thread to the network thread. */
export type NetworkCommand =
  /** Local worker `worker` ended: frames for it are dropped, and spares are refused from now on. */
  | { type: 'exited'; worker: number }
  | { type: 'refuseJoins' }
  /** Every local worker returned: say goodbye; `finished` answers. */
  | { type: 'finish' }
  /** The run failed here: tell the peers why and close. */
  | { type: 'abort'; reason: string }
  | { type: 'close' };

/** An error as it crosses threads. */
export interface NetworkError {
  name: string;
  message: string;
  process?: number;
}

/** From the network thread to the main thread. */
export type NetworkEvent =
  | { type: 'connected' }
  /** The mesh could not be built. */
  | { type: 'refused'; error: NetworkError }
  /** A peer failed (fail-stop): the local run fails with it. */
  | { type: 'failure'; error: NetworkError }
  /** finish() settled: every peer said goodbye, or the run failed first. */
  | { type: 'finished'; error?: NetworkError };

export function serialize(e: Error): NetworkError {
  return { name: e.name, message: e.message, ...(e instanceof PeerError ? { process: e.process } : {}) };
}

/** The error of the class the network thread raised, rebuilt on the main thread. */
export function revive(e: NetworkError): Error {
  switch (e.name) {
    case 'PeerError': return new PeerError(e.process ?? -1, e.message);
    case 'ConnectError': return new ConnectError(e.message);
    case 'ConfigError': return new ConfigError(e.message);
    case 'ProtocolError': return new ProtocolError(e.message);
    default: return Object.assign(new WeftError(e.message), { name: e.name });
  }
}

// Written straight to the file descriptor: a worker thread's console goes
// through the main thread, which may be busy (or exit) before it relays it.
function log(line: string): void {
  try {
    writeSync(2, `${line}\n`);
  } catch {
    console.error(line);
  }
}

/** Buffers cross threads as plain Uint8Arrays; TLS wants Buffers back. */
function buffers<T extends object | undefined>(tls: T): T {
  if (tls === undefined) return tls;
  const fix = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(fix) : v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.length) : v;
  return Object.fromEntries(Object.entries(tls).map(([k, v]) => [k, fix(v)])) as T;
}

/** The thread's entry (called by the bootstrap). */
export async function serve(boot: NetworkBoot): Promise<void> {
  const port = parentPort!;
  const post = (event: NetworkEvent): void => port.postMessage(event);
  const o = boot.mesh;
  let mesh: Mesh;
  try {
    mesh = await connectMesh({ ...o, tls: buffers(o.tls), log });
  } catch (error) {
    post({ type: 'refused', error: serialize(error as Error) });
    return;
  }
  const control = new Control(boot.control);
  const bells = boot.bells.map((b) => new Doorbell(b));
  const who = `weft: process ${o.process}`;
  const router = new Router({
    process: o.process, processes: o.processes, threads: o.threads, addresses: o.addresses, links: mesh.links,
    bell: new Doorbell(boot.routerBell),
    fromWorkers: boot.fromWorkers.map((r, k) => new RingReader(r, new Doorbell(boot.workerBells[k]!))),
    toWorkers: boot.toWorkers.map((r, k) => new RingWriter(r, new Doorbell(boot.workerBells[k]!))),
    // A worker may hold HIGH_WATER bytes of chunks before the sockets pause, as the router's queue may.
    slab: boot.slab === undefined ? undefined : new SlabWriter(boot.slab, HIGH_WATER),
    workerSlabs: boot.workerSlabs.map((s, k) => (s === undefined ? undefined : new SlabReader(s, new Doorbell(boot.workerBells[k]!)))),
    limits: boot.limits,
    heartbeatTimeoutMs: boot.heartbeatTimeoutMs,
    onFailure: (e) => post({ type: 'failure', error: serialize(e) }),
    onLoss: boot.continueOnLoss ? (e) => {
      log(`${who}: ${e.message}; the others continue`);
      control.lose(e.process, bells);
      if (control.joinsLeft) mesh.lost(e.process);
      else log(`${who}: process ${e.process} cannot come back: the cluster's log of joins is full`);
    } : undefined,
    spares: o.spares,
    onJoin: (process) => {
      const back = control.lost(0, control.lostCount).includes(process);
      log(`${who}: ${back ? 'lost' : 'spare'} process ${process} (${o.addresses[process]}) ${back ? 'came back' : 'joined'}`);
      control.join(process, bells);
    },
    lossesApplied: (local) => control.lossesApplied(local) >= control.lostCount,
    counters: new LinkCounters(boot.links),
  });
  mesh.onJoin((process, link) => router.join(process, link));
  port.on('message', (c: NetworkCommand) => {
    switch (c.type) {
      case 'exited':
        // A spare joining now would find this worker gone: the cluster is finishing.
        mesh.refuseJoins();
        router.workerExited(c.worker);
        return;
      case 'refuseJoins':
        mesh.refuseJoins();
        return;
      case 'finish':
        router.finish().then(
          () => post({ type: 'finished' }),
          (e: Error) => post({ type: 'finished', error: serialize(e) }),
        ).finally(() => mesh.close());
        return;
      case 'abort':
        router.abort(c.reason);
        mesh.close();
        return;
      case 'close':
        mesh.close();
        return;
    }
  });
  // The port does not hold the thread (a listener refs it): the thread ends
  // once its sockets and its listener are closed.
  port.unref();
  post({ type: 'connected' });
}
