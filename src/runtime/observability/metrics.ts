// What a runtime's directives have done, per operation and per worker, for
// `Runtime.metrics()`. Counts are always kept; durations only with
// `recordTiming` (the default). Workers time each task and send the time
// with its result (`TaskResult.us`, `.w`); the orchestrator times the round
// trip, so a task's wait is its round trip less its run time, whatever the
// clocks of the machines involved.

import { Histogram, type DurationSummary } from './histogram.ts';

/** What the tasks of one operation did, for `Runtime.metrics()`. */
export interface OperationMetrics {
  /** Tasks that returned an output. */
  readonly completed: number;
  /** Attempts that failed: the operation threw, timed out, or its worker was lost. */
  readonly failed: number;
  /** Attempts dispatched again after a transient failure or a timeout. */
  readonly retried: number;
  /** How long completed tasks ran on their workers, in ms. */
  readonly runTime: DurationSummary;
  /**
   * How long completed tasks waited, in ms: from their dispatch (or, when a
   * directive sends many at once, the turn it admitted them in) until they
   * ran, counting the trips to and from the worker; their round trip less
   * their run time.
   */
  readonly waitTime: DurationSummary;
}

/** What one worker did, for `Runtime.metrics()`. */
export interface WorkerMetrics {
  /**
   * The worker's index among its backend's workers (`Runtime.local`: 0;
   * `Runtime.inMemory`: its thread; `Runtime.cluster`: its worker index
   * across processes; `Runtime.amqp`: the order in which the orchestrator
   * first heard from it).
   */
  readonly worker: number;
  /**
   * On `Runtime.amqp`, the name the worker process gave with its results:
   * its `AmqpWorker.id` (host, pid and a random suffix). An AMQP worker
   * is a process: its `utilization` goes up to its thread count.
   */
  readonly id?: string;
  /** Tasks it completed. */
  readonly completed: number;
  /** The sum of their run times, in ms. */
  readonly busyMs: number;
  /**
   * `busyMs` over the time since the metrics started: the mean number of
   * tasks it was running. Up to 1 for synchronous operations; async ones
   * overlap, and can take it above 1.
   */
  readonly utilization: number;
}

/** `Runtime.metrics()`: since the runtime started, or since `resetMetrics()`. */
export interface RuntimeMetrics {
  /** When these metrics started (ms since the epoch). */
  readonly since: number;
  /** How long ago that was, in ms. */
  readonly elapsedMs: number;
  /** Whether durations are recorded (`recordTiming`); without, they are all zero. */
  readonly timing: boolean;
  /** By operation name. */
  readonly operations: Readonly<Record<string, OperationMetrics>>;
  /** The workers that completed a task, by index. */
  readonly workers: readonly WorkerMetrics[];
}

/** One operation's counters and histograms, updated by its directives. */
export class OperationRecord {
  completed = 0;
  failed = 0;
  retried = 0;
  readonly runTime = new Histogram();
  readonly waitTime = new Histogram();

  snapshot(): OperationMetrics {
    const { completed, failed, retried } = this;
    return { completed, failed, retried, runTime: this.runTime.summary(), waitTime: this.waitTime.summary() };
  }
}

interface WorkerRecord {
  completed: number;
  busyUs: number;
}

/** The metrics of one runtime: what its directives record into. */
export class MetricsRecorder {
  private operations = new Map<string, OperationRecord>();
  private workers: (WorkerRecord | undefined)[] = [];
  /** The record `timed` updated last, and its worker's index. */
  private lastWorker: WorkerRecord | undefined;
  private lastWorkerIndex = -1;
  private since = Date.now();
  private start = performance.now();

  /** `nameOf` names workers by index, where the backend's workers name themselves (see WorkerMetrics.id). */
  constructor(
    readonly timing: boolean,
    private readonly nameOf?: (worker: number) => string | undefined,
  ) {}

  /** The record of operation `name`: directives look it up once, and update it per result. */
  operation(name: string): OperationRecord {
    let record = this.operations.get(name);
    if (record === undefined) this.operations.set(name, (record = new OperationRecord()));
    return record;
  }

  /**
   * A task of `operation` completed: it ran `runUs` on worker `worker`
   * (when its worker said so), `roundTripMs` after it was dispatched.
   */
  timed(operation: OperationRecord, roundTripMs: number, runUs: number | undefined, worker: number | undefined): void {
    if (runUs === undefined) return;
    operation.runTime.record(runUs);
    operation.waitTime.record(roundTripMs * 1000 - runUs);
    if (worker === undefined) return;
    // A batch's results come from one worker: its record is the last one's.
    let record = this.lastWorker;
    if (worker !== this.lastWorkerIndex) {
      record = this.workers[worker] ??= { completed: 0, busyUs: 0 };
      this.lastWorker = record;
      this.lastWorkerIndex = worker;
    }
    record!.completed++;
    record!.busyUs += runUs;
  }

  reset(): void {
    // Directives hold their operations' records: empty them in place.
    for (const record of this.operations.values()) {
      record.completed = record.failed = record.retried = 0;
      record.runTime.reset();
      record.waitTime.reset();
    }
    this.workers = [];
    this.lastWorker = undefined;
    this.lastWorkerIndex = -1;
    this.since = Date.now();
    this.start = performance.now();
  }

  snapshot(): RuntimeMetrics {
    const elapsedMs = performance.now() - this.start;
    const operations: Record<string, OperationMetrics> = {};
    for (const [name, record] of this.operations) operations[name] = record.snapshot();
    const workers: WorkerMetrics[] = [];
    this.workers.forEach((record, worker) => {
      if (record === undefined) return;
      const busyMs = record.busyUs / 1000;
      const figures: WorkerMetrics = { worker, completed: record.completed, busyMs, utilization: elapsedMs > 0 ? busyMs / elapsedMs : 0 };
      const id = this.nameOf?.(worker);
      workers.push(id === undefined ? figures : { ...figures, id });
    });
    return { since: this.since, elapsedMs, timing: this.timing, operations, workers };
  }
}
