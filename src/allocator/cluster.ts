// initialize() for Config.cluster: connect to the peer processes, start this
// process's worker threads, and route their remote frames over TCP. join()
// resolves to this process's workers' results once every process has said
// goodbye; a peer that dies makes it reject with a PeerError.

import type { Config } from './config.ts';
import { Guards, type WorkerGuards } from './guards.ts';
import { buildClusterFabric } from '../transport/index.ts';
import { startThread, type Task } from './thread.ts';
import { Control } from '../transport/index.ts';
import { Doorbell } from '../transport/index.ts';
import { connectMesh } from '../transport/network.ts';
import { Router } from '../transport/network.ts';
import { RingReader, RingWriter, maxPayload } from '../transport/index.ts';

export async function launchCluster<R>(config: Extract<Config, { kind: 'cluster' }>, task: Task): Promise<WorkerGuards<R>> {
  const { threads, options } = config;
  const c = config.cluster;
  const processes = c.addresses.length;
  const mesh = await connectMesh({
    process: c.process, processes, threads, ringBytes: options.ringBytes, secret: c.secret, tls: c.tls,
    addresses: c.addresses, connectTimeoutMs: c.connectTimeoutMs, spares: c.spares,
    log: (line) => console.error(line),
  });
  const fabric = buildClusterFabric(threads, processes, c.process, options.ringBytes, options, c.spares);
  const routerBell = new Doorbell(fabric.routerBell);
  const control = new Control(fabric.control);
  const bells = fabric.bells.map((b) => new Doorbell(b));
  let guards!: Guards<R>;
  const router = new Router({
    process: c.process, processes, threads, addresses: c.addresses, links: mesh.links, bell: routerBell,
    fromWorkers: fabric.fromWorkers.map((r, k) => new RingReader(r, new Doorbell(fabric.bells[k]!))),
    toWorkers: fabric.toWorkers.map((r, k) => new RingWriter(r, new Doorbell(fabric.bells[k]!))),
    limits: { peers: threads * processes, maxFrame: maxPayload(options.ringBytes), maxBatch: options.maxMessageBytes },
    heartbeatTimeoutMs: c.heartbeatTimeoutMs,
    onFailure: (e) => guards.failExternal(e),
    onLoss: c.onPeerLoss === 'continue' ? (e) => {
      console.error(`weft: process ${c.process}: ${e.message}; the others continue`);
      control.lose(e.process, bells);
    } : undefined,
    spares: c.spares,
    onJoin: (process) => {
      console.error(`weft: process ${c.process}: spare process ${process} (${c.addresses[process]}) joined`);
      control.join(process, bells);
    },
  });
  mesh.onJoin((process, link) => router.join(process, link));
  const close = (): void => mesh.close();
  const workers = fabric.wirings.map((w) => startThread(task, w));
  guards = new Guards<R>(
    workers,
    control,
    bells,
    {
      exited: (k) => {
        // A spare joining now would find this worker gone: the cluster is finishing.
        mesh.refuseJoins();
        router.workerExited(k);
      },
      refuseJoins: () => mesh.refuseJoins(),
      finish: () => router.finish().finally(close),
      failed: (reason) => {
        router.abort(`process ${c.process}: ${reason}`);
        close();
      },
    },
    c.process * threads,
  );
  void guards.join().catch(close);
  await guards.ready;
  return guards.handle;
}
