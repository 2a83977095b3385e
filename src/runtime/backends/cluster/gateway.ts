// The cluster backend's gateway: global worker 0, a thread of process 0. It
// relays task batches from the orchestrator (its process's main thread, which
// is no peer of the cluster allocator) to the other workers, scheduled by a
// Dispatcher, and relays their results back.
//
// The cluster runs with onPeerLoss 'continue': when a serving process is
// lost, the tasks its workers held go back to the front of the queue for the
// survivors. A result counts once: the Dispatcher only accepts a result from
// the worker that holds the task, and a lost worker holds none. A spare
// process that joins is no different from a worker that starts late: its
// workers report ready, and the Dispatcher gives them their share from then on.
//
// Cancellation reaches the workers holding the tasks (their signals abort).
// A worker thread in another process cannot be terminated from here, so a
// worker still holding a cancelled task `graceMs` later is set aside
// instead: its other tasks go to the others, its cancelled ones are given
// up on (a timed-out attempt fails its directive with TaskStuckError rather
// than be retried beside itself), and it gets work again once it answers a
// ping, which waits behind whatever it is running.

import { BroadcastChannel } from 'node:worker_threads';
import { PeerError, type Allocator, type Pull } from '../../../allocator/index.ts';
import type { FromGateway, ToGateway } from './gateway-messages.ts';
import { Dispatcher } from '../../channel-protocol/dispatcher.ts';
import { TaskCancelledError, TaskStuckError } from '../../core/errors.ts';
import { failed, type TaskProgress, type TaskResult } from '../../core/task.ts';
import { Cancellations } from '../../channel-protocol/cancels.ts';
import { Pieces, unpackProgress } from '../../channel-protocol/outputs.ts';
import { Pump } from '../../channel-protocol/pump.ts';
import { sendTasks } from '../../channel-protocol/send-tasks.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../../allocator/internal.ts';
import { isResult, RESULT_CHANNEL_BASE, TASK_CHANNEL, type HostMessage, type WorkerMessage } from '../../channel-protocol/messages.ts';

// Parked, the gateway still runs the orchestrator's messages (they arrive as
// events); this bound only limits how long a stop waits to be noticed.
const PARK_MS = 50;

export async function runGateway(allocator: Allocator, channel: string): Promise<void> {
  const tasks = allocator.allocate<HostMessage>(TASK_CHANNEL)[0];
  const results: Pull<WorkerMessage>[] = [];
  for (let worker = 0; worker < allocator.peers; worker++) results.push(allocator.allocate<WorkerMessage>(RESULT_CHANNEL_BASE + worker)[1]);
  const pieces = Pieces.on(allocator, allocator.peers);
  // A worker whose process was lost throws PeerError on send; that loss is
  // learnt in receive() and may reach a send before the loop below handles
  // it. What was sent then comes back when it does (takeFrom).
  const send = (worker: number, messages: readonly HostMessage[]): void => {
    try {
      for (const message of messages) tasks[worker]!.send(message);
      tasks[worker]!.flush();
    } catch (error) {
      if (!(error instanceof PeerError)) throw error;
    }
  };
  // Tasks go in frames within the bound the workers' results keep (worker-loop.ts): those too large alone fail their directive, not the gateway.
  const dispatcher: Dispatcher = new Dispatcher(allocator.peers, (worker, batch) => {
    let refused: TaskResult[];
    try {
      refused = sendTasks(tasks[worker]!, batch, DEFAULT_MAX_MESSAGE_BYTES);
    } catch (error) {
      if (!(error instanceof PeerError)) throw error;
      return;
    }
    // Settled once the dispatcher is done sending: settling refills the workers.
    if (refused.length > 0) queueMicrotask(() => tell({ results: dispatcher.settle(worker, refused) }));
  });
  const orchestrator = new BroadcastChannel(channel);
  const tell = (message: FromGateway) => orchestrator.postMessage(message);
  let stopping = false;
  // Workers set aside for holding a cancelled task past its grace, by the ping they must answer.
  const setAside = new Map<number, number>();
  let pings = 0;
  const stuck = (worker: number) => {
    if (setAside.has(worker) || lost.has(worker)) return;
    dispatcher.setReady(worker, false);
    const { live, cancelled } = dispatcher.takeFrom(worker);
    dispatcher.requeue(live);
    const error = new TaskStuckError(
      `the task went on past its grace after it was cancelled, and a worker thread of another process cannot be terminated: it is not retried, so that two attempts never run at once (worker ${worker} gets no work until it is free)`,
    );
    if (cancelled.length > 0) tell({ results: cancelled.map((task) => failed(task, error)) });
    setAside.set(worker, pings);
    send(worker, [{ ping: pings++ }]);
  };
  const cancellations = new Cancellations(dispatcher, (worker, cancel) => send(worker, [cancel]), (answered) => tell({ results: answered }), stuck);
  orchestrator.onmessage = (event) => {
    const message = (event as { data: ToGateway }).data;
    if ('tasks' in message) dispatcher.enqueue(message.tasks);
    else if ('cancel' in message) cancellations.cancel(message.cancel, message.graceMs);
    else stopping = true;
  };
  // Serving workers not ready yet (spares not joined are not waited for), and those lost.
  const unready = new Set(Array.from({ length: allocator.peers - 1 }, (_, k) => k + 1).filter((w) => allocator.present(w)));
  const lost = new Set<number>();
  const markReady = (worker: number) => {
    if (!unready.delete(worker) || unready.size > 0) return;
    tell({ ready: allocator.peers - 1 - lost.size });
  };
  // A spare counts as joined once all its workers are ready: from then on it gets tasks.
  const readySeen = new Set<number>();
  const joining = new Map<number, Set<number>>();
  const joinedWhenReady = (process: number, waiting: Set<number>) => {
    if (waiting.size > 0) return;
    joining.delete(process);
    tell({ joined: process });
  };
  /** Relays what arrived; true if anything did. */
  const round = (): boolean => {
    let any = false;
    const settled: TaskResult[] = [];
    const progress: TaskProgress[] = [];
    for (const join of allocator.peerJoins()) {
      any = true;
      // First: the joined process's messages follow its join. A lost process
      // that came back has new workers, which join once they say ready.
      for (const w of join.workers) {
        lost.delete(w);
        readySeen.delete(w);
      }
      const waiting = new Set(join.workers.filter((w) => !readySeen.has(w)));
      joining.set(join.process, waiting);
      joinedWhenReady(join.process, waiting);
    }
    for (let worker = 1; worker < allocator.peers; worker++) {
      const batch: TaskResult[] = [];
      for (let message = results[worker]!.recv(); message !== undefined; message = results[worker]!.recv()) {
        any = true;
        if (isResult(message)) pieces.result(worker, message, batch);
        else if ('parked' in message) dispatcher.setParked(worker, message.parked);
        else if ('progress' in message) progress.push(unpackProgress(message.progress));
        else if ('ready' in message) {
          dispatcher.setReady(worker, true);
          markReady(worker);
          readySeen.add(worker);
          for (const [process, waiting] of joining) if (waiting.delete(worker)) joinedWhenReady(process, waiting);
        } else if ('pong' in message && setAside.get(worker) === message.pong) {
          setAside.delete(worker);
          dispatcher.setReady(worker, true);
        }
        // dying is the thread backend's; a cluster is fail-stop
      }
      if (pieces.take(worker, batch)) any = true;
      if (batch.length > 0) settled.push(...dispatcher.settle(worker, batch));
    }
    if (progress.length > 0) tell({ progress });
    if (settled.length > 0) tell({ results: settled });
    for (const loss of allocator.peerLosses()) {
      joining.delete(loss.process);
      for (const worker of loss.workers) {
        lost.add(worker);
        pieces.drop(worker);
        dispatcher.setReady(worker, false);
      }
      let redispatched = 0;
      for (const worker of loss.workers) {
        const { live, cancelled } = dispatcher.takeFrom(worker);
        redispatched += live.length;
        dispatcher.requeue(live);
        const gone = new TaskCancelledError(`the task was cancelled and its process (${loss.process}) was lost`);
        if (cancelled.length > 0) tell({ results: cancelled.map((task) => failed(task, gone)) });
        setAside.delete(worker);
        markReady(worker);
      }
      any = true;
      tell({ lost: loss.process, redispatched });
    }
    return any;
  };
  try {
    await new Pump(allocator, PARK_MS, () => !stopping, round).run();
    // The orchestrator turned spares away before it said stop: a spare that
    // joined before that is learnt here, and told to stop like the others.
    allocator.receive();
    for (let worker = 1; worker < allocator.peers; worker++) send(worker, [{ stop: 1 }]);
    allocator.release();
  } finally {
    cancellations.clear();
    orchestrator.close();
  }
}
