// The backend of `Runtime.cluster`: the same script runs in every process of
// a weft cluster (`Config.cluster`, or `Config.process` for one process).
// Process 0's main thread orchestrates; global worker 0 (a thread of process
// 0) is the gateway that feeds every other worker over the cluster
// allocator; the other processes only serve.
//
// Design notes
// - The orchestrator is no peer of the allocator (its peers are worker
//   threads), so it reaches the gateway over a BroadcastChannel: one message
//   per task batch and per result batch, never per task.
// - The allocator under it runs with onPeerLoss 'continue': a serving
//   process that dies, freezes or leaves is reported to the gateway, which
//   re-dispatches the tasks its workers held to the survivors. Process 0
//   holds the orchestrator and the gateway: when it is lost, every serving
//   worker fails with a PeerError, and so does every other process. A worker
//   that throws (not a lost process) still aborts the whole cluster, and
//   every running directive rejects with `RuntimeClosedError` and the cause.
// - A spare process (Config.cluster `spares`) that joins while the runtime
//   runs serves like the others from its workers' first ready on. close()
//   turns spares away before it tells the gateway to stop, so none joins
//   after the gateway decided whom to stop.

import { BroadcastChannel } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../../errors.ts';
import { Config, type WorkerGuards } from '../../../allocator/index.ts';
import { checkConfig, initializeModule, peersOf, type Settings } from '../../../allocator/internal.ts';
import { DEFAULT_CANCEL_GRACE_MS, LeaseTable, type Backend, type BackendStats, type Lease, type LeaseHandlers, type LeaseOptions } from '../../core/backend.ts';
import { CLUSTER_SETTINGS_ENV, type ClusterSettings, type FromGateway, type ToGateway } from './gateway-messages.ts';
import { RuntimeClosedError } from '../../core/errors.ts';
import type { Task } from '../../core/task.ts';
import { DEFAULT_CONCURRENCY } from '../../channel-protocol/dispatcher.ts';
import { moduleUrl } from '../../../allocator/index.ts';
import { peerJoinedChannel, peerLostChannel, type PeerMessage } from '../../observability/channels.ts';

function workerModule(): string {
  const self = import.meta.url;
  return fileURLToPath(new URL(self.endsWith('.ts') ? './cluster-worker.ts' : './cluster-worker.js', self));
}

export class ClusterBackend implements Backend {
  readonly parallelism: number;
  private readonly leases = new LeaseTable();
  private pending: Task[] = [];
  private closed = false;
  private readonly lostProcesses: number[] = [];
  private readonly joinedProcesses: number[] = [];
  private redispatched = 0;
  private readonly ready: Promise<void>;
  private onReady!: { resolve: () => void; reject: (error: Error) => void };

  private constructor(
    private readonly guards: WorkerGuards<void>,
    private readonly gateway: BroadcastChannel,
    workers: number,
    private readonly cancelGraceMs: number,
  ) {
    // The gateway's Dispatcher hands each worker up to its default concurrency.
    this.parallelism = workers * DEFAULT_CONCURRENCY;
    this.ready = new Promise((resolve, reject) => (this.onReady = { resolve, reject }));
    gateway.onmessage = (event) => {
      const message = (event as { data: FromGateway }).data;
      if ('results' in message) this.leases.route(message.results);
      else if ('progress' in message) this.leases.routeProgress(message.progress);
      else if ('lost' in message) {
        this.lostProcesses.push(message.lost);
        this.redispatched += message.redispatched;
        if (peerLostChannel.hasSubscribers) peerLostChannel.publish({ process: message.lost, redispatched: message.redispatched } satisfies PeerMessage);
        console.error(`weft: Runtime.cluster lost process ${message.lost}; the ${message.redispatched} task(s) it held run on the others`);
        this.leases.membershipChanged();
      } else if ('joined' in message) {
        this.joinedProcesses.push(message.joined);
        if (peerJoinedChannel.hasSubscribers) peerJoinedChannel.publish({ process: message.joined, redispatched: 0 } satisfies PeerMessage);
        const back = this.lostProcesses.includes(message.joined);
        console.error(`weft: Runtime.cluster: ${back ? 'lost' : 'spare'} process ${message.joined} ${back ? 'came back' : 'joined'}; it gets tasks from now on`);
        this.leases.membershipChanged();
      } else this.onReady.resolve();
    };
    // Once the workers have ended, for whatever reason, the gateway has no
    // one to talk to: closing it lets the process exit (an open
    // BroadcastChannel holds the event loop, and a failed cluster never
    // reaches close()'s own).
    guards.join().then(
      () => this.fail(new RuntimeClosedError('the cluster workers ended')),
      (error: Error) => this.fail(new RuntimeClosedError(`the cluster failed: ${error.message}`, { cause: error })),
    ).finally(() => gateway.close());
  }

  /**
   * Starts this process's share of the cluster. In process 0, resolves to the
   * backend once every worker has imported `modules`; in the others, serves
   * until the orchestrator closes and resolves to undefined.
   */
  static async start(given: Config, modules: readonly (string | URL)[], cancelGraceMs = DEFAULT_CANCEL_GRACE_MS): Promise<ClusterBackend | undefined> {
    const config = checkConfig(given, 'Runtime.cluster');
    const peers = peersOf(config);
    if (peers < 2) throw new ConfigError('Runtime.cluster needs at least 2 workers: worker 0 is the gateway, the others serve');
    const orchestrates = config.kind !== 'cluster' || config.cluster.process === 0;
    // A BroadcastChannel name is shared by every thread of the process: a
    // counter per module would repeat in each thread that loads weft.
    const settings: ClusterSettings = { operations: modules.map(moduleUrl), channel: `weft.runtime.${randomUUID()}` };
    // Opened before the gateway exists, so its first message cannot be missed.
    const gateway = orchestrates ? new BroadcastChannel(settings.channel) : undefined;
    process.env[CLUSTER_SETTINGS_ENV] = JSON.stringify(settings);
    let guards: WorkerGuards<void>;
    try {
      guards = await initializeModule<void>(surviving(given, config), { module: workerModule(), export: 'serveCluster' }, settings.operations);
    } catch (error) {
      gateway?.close();
      throw error;
    } finally {
      delete process.env[CLUSTER_SETTINGS_ENV];
    }
    if (gateway === undefined) {
      await guards.join();
      return undefined;
    }
    const backend = new ClusterBackend(guards, gateway, peers - 1, cancelGraceMs);
    try {
      await backend.ready;
    } catch (error) {
      gateway.close();
      throw error;
    }
    return backend;
  }

  stats(): BackendStats {
    return { lostProcesses: [...this.lostProcesses], redispatched: this.redispatched, joinedProcesses: [...this.joinedProcesses] };
  }

  lease(handlers: LeaseHandlers, options?: LeaseOptions): Lease {
    if (this.closed) throw new RuntimeClosedError('the runtime is closed');
    const graceMs = options?.cancelGraceMs ?? this.cancelGraceMs;
    return this.leases.lease(
      handlers,
      (key, why) => {
        this.pending = this.pending.filter((task) => task.key !== key);
        if (!this.closed) this.tell({ cancel: { key, why }, graceMs });
      },
      (task, why) => {
        // Tasks of this turn not yet sent go first, so the gateway knows the one it cancels.
        this.flush();
        if (!this.closed) this.tell({ cancel: { key: task.key, task: [task.index, task.stage, task.attempt], why }, graceMs });
      },
    );
  }

  dispatch(tasks: readonly Task[]): void {
    // Coalesced: the dispatches of one turn cross to the gateway as one message.
    if (this.pending.length === 0) queueMicrotask(() => this.flush());
    for (const task of tasks) this.pending.push(task);
  }

  /** Stops the workers (unless they already ended) and resolves once they have, whether they ended well or not. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.fail(new RuntimeClosedError('the runtime was closed'));
      this.guards.refuseJoins();
      this.gateway.postMessage({ stop: 1 } satisfies ToGateway);
    }
    await this.guards.join().catch(() => {});
  }

  private flush(): void {
    if (this.closed || this.pending.length === 0) return;
    const tasks = this.pending;
    this.pending = [];
    this.tell({ tasks });
  }

  private tell(message: ToGateway): void {
    this.gateway.postMessage(message);
  }

  private fail(error: Error): void {
    this.onReady.reject(error);
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.leases.failAll(error);
  }
}

/** The cluster config with onPeerLoss 'continue': the gateway re-dispatches what a lost process held. */
function surviving(given: Config, config: Settings): Config {
  if (config.kind !== 'cluster') return given;
  return Config.cluster({ ...config.options, ...config.cluster, onPeerLoss: 'continue' });
}
