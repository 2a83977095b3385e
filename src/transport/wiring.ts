// The shared-memory layout of the workers in one process: a doorbell per
// worker, one ring per ordered pair of workers that talk, and the control
// cells of the run; in a cluster, one ring each way between every worker and
// the router. A worker is built from its Wiring, which travels in workerData.

import { createRingBuffer } from './ring.ts';
import { createSlab } from './slab.ts';
import { DOORBELL_BYTES } from './doorbell.ts';
import { Control } from './control.ts';
import { linkCountersBuffer } from './link-counters.ts';

/** The byte limits every worker of a run applies (Config options of the same names). */
export interface Limits {
  maxMessageBytes: number;
  highWaterBytes: number;
  maxBacklogBytes: number;
  /** Bytes of each worker's slab (large batches to threads of its process); 0: none. */
  slabBytes: number;
}

/** Shared memory a worker is built from; travels in workerData. */
export interface Wiring {
  index: number;
  peers: number;
  control: SharedArrayBuffer;
  /** This worker's doorbell. */
  bell: SharedArrayBuffer;
  /** Every doorbell in this process, rung on abort. */
  bells: SharedArrayBuffer[];
  /** Per target: index into `out`, or -1 for itself or a worker it has no route to. */
  routes: number[];
  out: RingEnd[];
  in: RingEnd[];
  /** This worker's slab, where its large batches to threads of this process go (none when slabBytes is 0). */
  slab?: SharedArrayBuffer;
  /** Bytes of each ring; also how far ahead of recv() a channel is decoded. */
  ringBytes: number;
  limits: Limits;
  /** In a cluster, threads per process: worker w runs in process floor(w / threads). */
  threads?: number;
  /** In a cluster, the spare processes absent when the worker starts (every spare but its own process). */
  absent?: number[];
  /** In a cluster, the process's link counters, written by its network thread (link-counters.ts). */
  links?: SharedArrayBuffer;
}

/** A ring and the doorbell of the thread at its other end. */
export interface RingEnd {
  ring: SharedArrayBuffer;
  bell: SharedArrayBuffer;
  /** For an incoming ring with a single writer: that worker. */
  peer?: number;
  /** The slab of the ring's writer, when its reader is a thread of the same process. */
  slab?: SharedArrayBuffer;
  /** The ring's reader is the router: it gives the writer's chunks back itself once it has sent them on. */
  relay?: boolean;
}

export interface Fabric {
  control: SharedArrayBuffer;
  bells: SharedArrayBuffer[];
  wirings: Wiring[];
}

/**
 * `links(i, j)` says whether worker i writes to worker j; a full mesh for
 * initialize, a star around the host for hosted pools.
 */
export function buildFabric(
  peers: number,
  ringBytes: number,
  given: Limits,
  links: (from: number, to: number) => boolean = () => true,
): Fabric {
  const limits: Limits = { maxMessageBytes: given.maxMessageBytes, highWaterBytes: given.highWaterBytes, maxBacklogBytes: given.maxBacklogBytes, slabBytes: given.slabBytes };
  const control = Control.buffer();
  const bells = Array.from({ length: peers }, () => new SharedArrayBuffer(DOORBELL_BYTES));
  const wirings: Wiring[] = bells.map((bell, index) => ({
    index, peers, control, bell, bells, routes: new Array<number>(peers).fill(-1), out: [], in: [], ringBytes, limits, slab: createSlab(limits.slabBytes),
  }));
  for (let from = 0; from < peers; from++) {
    const slab = wirings[from]!.slab;
    for (let to = 0; to < peers; to++) {
      if (from === to || !links(from, to)) continue;
      const ring = createRingBuffer(ringBytes);
      const w = wirings[from]!;
      w.routes[to] = w.out.push({ ring, bell: bells[to]!, slab }) - 1;
      wirings[to]!.in.push({ ring, bell: bells[from]!, peer: from, slab });
    }
  }
  return { control, bells, wirings };
}

/** Fresh rings between `peer` and `host`, for a replacement worker. */
export function relink(host: Wiring, peer: Wiring, ringBytes: number): { hostOut: RingEnd; hostIn: RingEnd } {
  const toPeer = createRingBuffer(ringBytes);
  const toHost = createRingBuffer(ringBytes);
  // A slab of its own too: the host may still hold views of the old one's chunks.
  peer.slab = createSlab(peer.limits.slabBytes);
  peer.out = [{ ring: toHost, bell: host.bell, slab: peer.slab }];
  peer.routes = peer.routes.map((_, i) => (i === host.index ? 0 : -1));
  peer.in = [{ ring: toPeer, bell: host.bell, peer: host.index, slab: host.slab }];
  return { hostOut: { ring: toPeer, bell: peer.bell, slab: host.slab }, hostIn: { ring: toHost, bell: peer.bell, peer: peer.index, slab: peer.slab } };
}

export interface ClusterFabric extends Fabric {
  routerBell: SharedArrayBuffer;
  /** Per local worker: the ring it writes remote frames into. */
  fromWorkers: SharedArrayBuffer[];
  /** Per local worker: the ring the router writes remote frames into. */
  toWorkers: SharedArrayBuffer[];
  /** The link counters, written by the network thread and read by the workers. */
  links: SharedArrayBuffer;
  /** The router's slab: large batches from peer processes, read into its chunks (none when slabBytes is 0). */
  slab?: SharedArrayBuffer;
}

/**
 * One process of a cluster: a full mesh among its `threads` workers, plus
 * one ring each way between every worker and the router. Every remote
 * target routes to the worker's router ring; global index = process x
 * threads + local index.
 */
export function buildClusterFabric(threads: number, processes: number, process: number, ringBytes: number, limits: Limits, spares: readonly number[] = []): ClusterFabric {
  const peers = threads * processes;
  const base = process * threads;
  const local = buildFabric(threads, ringBytes, limits);
  const control = Control.buffer(processes, threads);
  const routerBell = new SharedArrayBuffer(DOORBELL_BYTES);
  const links = linkCountersBuffer(processes);
  const slab = createSlab(limits.slabBytes);
  const bells = [...local.bells, routerBell];
  const fromWorkers: SharedArrayBuffer[] = [];
  const toWorkers: SharedArrayBuffer[] = [];
  const wirings = local.wirings.map((w, k): Wiring => {
    const routes = new Array<number>(peers).fill(-1);
    w.routes.forEach((r, j) => (routes[base + j] = r));
    const up = createRingBuffer(ringBytes);
    const down = createRingBuffer(ringBytes);
    fromWorkers.push(up);
    toWorkers.push(down);
    // Its slab too: the router writes its large batches to the sockets from there.
    const out = [...w.out, { ring: up, bell: routerBell, slab: w.slab, relay: true }];
    for (let t = 0; t < peers; t++) if (Math.floor(t / threads) !== process) routes[t] = out.length - 1;
    const inn = [...w.in.map((e) => ({ ...e, peer: base + e.peer! })), { ring: down, bell: routerBell, slab }];
    const absent = spares.filter((p) => p !== process);
    return { ...w, index: base + k, peers, control, bells, routes, out, in: inn, threads, absent, links };
  });
  return { control, bells, wirings, routerBell, fromWorkers, toWorkers, links, slab };
}
