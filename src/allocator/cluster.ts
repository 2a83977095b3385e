// initialize() for Config.cluster: start this process's network thread
// (src/transport/network.ts: it connects to the peer processes, then routes
// the workers' remote frames over TCP and keeps the heartbeats), then this
// process's worker threads. join() resolves to this process's workers'
// results once every process has said goodbye; a peer that dies makes it
// reject with a PeerError.
//
// The main thread only relays between the guards and the network thread:
// nothing the network needs waits for it, so a program that keeps its main
// thread busy (a long combine, a synchronous loop) delays no frame and no
// heartbeat.

import type { Worker } from 'node:worker_threads';
import type { Settings } from './config.ts';
import { Guards, type WorkerGuards } from './guards.ts';
import { buildClusterFabric, Control, Doorbell, maxPayload } from '../transport/index.ts';
import { startNetworkThread, startThread, type Task } from './thread.ts';
import { revive, type NetworkCommand, type NetworkEvent } from '../transport/network.ts';
import { PeerError } from '../errors.ts';

export async function launchCluster<R>(config: Extract<Settings, { kind: 'cluster' }>, task: Task): Promise<WorkerGuards<R>> {
  const { threads, options } = config;
  const c = config.cluster;
  const processes = c.addresses.length;
  // A replacement runs as the lost process, from its own address.
  const me = c.replaces ?? c.process;
  const addresses = c.addresses.map((a, i) => (i === me ? c.addresses[c.process]! : a));
  const fabric = buildClusterFabric(threads, processes, me, options.ringBytes, options, c.spares);
  const network = startNetworkThread({
    mesh: {
      process: me, processes, threads, ringBytes: options.ringBytes, secret: c.secret, tls: c.tls,
      addresses, connectTimeoutMs: c.connectTimeoutMs, spares: c.spares, replacing: c.replaces !== undefined,
    },
    heartbeatTimeoutMs: c.heartbeatTimeoutMs,
    continueOnLoss: c.onPeerLoss === 'continue',
    limits: { peers: threads * processes, maxFrame: maxPayload(options.ringBytes), maxBatch: options.maxMessageBytes },
    control: fabric.control, bells: fabric.bells, routerBell: fabric.routerBell,
    workerBells: fabric.bells.slice(0, threads), fromWorkers: fabric.fromWorkers, toWorkers: fabric.toWorkers,
    links: fabric.links, slab: fabric.slab, workerSlabs: fabric.wirings.map((w) => w.slab),
  }, me);
  await connected(network);

  const command = (c: NetworkCommand): void => network.postMessage(c);
  let guards!: Guards<R>;
  let finished: { resolve: () => void; reject: (e: Error) => void } | undefined;
  let ended = false;
  network.on('message', (event: NetworkEvent) => {
    if (event.type === 'failure') guards.failExternal(revive(event.error));
    else if (event.type === 'finished') {
      if (event.error) finished?.reject(revive(event.error));
      else finished?.resolve();
    }
  });
  const stopped = (why: string): void => {
    ended = true;
    const error = new PeerError(-1, `process ${me}'s network thread ${why}`);
    guards.failExternal(error);
    finished?.reject(error);
  };
  network.on('error', (e) => stopped(`failed: ${e.message}`));
  network.on('exit', () => {
    if (!ended) stopped('stopped before the cluster finished');
  });

  const workers = fabric.wirings.map((w) => startThread(task, w));
  guards = new Guards<R>(
    workers,
    new Control(fabric.control),
    fabric.bells.map((b) => new Doorbell(b)),
    {
      exited: (worker) => command({ type: 'exited', worker }),
      refuseJoins: () => command({ type: 'refuseJoins' }),
      finish: () => new Promise<void>((resolve, reject) => {
        finished = { resolve: () => { ended = true; resolve(); }, reject };
        command({ type: 'finish' });
      }),
      failed: (reason) => command({ type: 'abort', reason: `process ${me}: ${reason}` }),
    },
    me * threads,
  );
  void guards.join().catch(() => {
    ended = true;
    command({ type: 'close' });
  });
  await guards.ready;
  return guards.handle;
}

/** Resolves once the network thread has built the mesh; rejects with its ConnectError otherwise. */
function connected(network: Worker): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (event: NetworkEvent): void => {
      network.off('exit', early);
      network.off('error', reject);
      network.off('message', settle);
      if (event.type === 'connected') resolve();
      else if (event.type === 'refused') reject(revive(event.error));
    };
    const early = (code: number): void => reject(new PeerError(-1, `the network thread exited (code ${code}) before the cluster was connected`));
    network.on('message', settle);
    network.on('error', reject);
    network.on('exit', early);
  });
}
