// The main thread's handle on running workers. Fail-stop lives here: the
// first worker to fail (throw, or exit without returning) aborts the run,
// which wakes every parked worker with an FailStopError; workers that do
// not stop within a grace period are terminated, so join() always settles.

import type { Worker } from 'node:worker_threads';
import { Control } from '../transport/index.ts';
import { Doorbell } from '../transport/index.ts';
import { FailStopError, ModuleError, WorkerError } from '../errors.ts';
import { decodeReturn, type Report, type SerializedError } from './returns.ts';

const GRACE_MS = 2_000;
/** A worker that returned but keeps its thread alive (open handles) is stopped after this. */
const LINGER_MS = 1_000;

interface Failure {
  worker: number;
  error: SerializedError;
  /** Failed only because another worker failed first. */
  aborted: boolean;
  /** A failure outside this process's workers (a peer process), raised as is. */
  external?: Error;
}

/** How a cluster process's router follows its workers. */
export interface GuardHooks {
  /** A local worker's thread ended. */
  exited?(index: number): void;
  /** Every local worker returned: join() waits for this too. */
  finish?(): Promise<void>;
  /** The run failed here: tell the peers why. */
  failed?(reason: string): void;
  /** Spares that connect from now on are turned away. */
  refuseJoins?(): void;
}

/** What initialize() resolves to: the main thread's handle on the running workers. */
export interface WorkerGuards<R> {
  /** The workers' return values in index order, or a WorkerError naming the first to fail. */
  join(): Promise<R[]>;
  /**
   * Stops the workers still running: they are aborted (a worker parked in
   * `awaitEvents` or `for await` wakes with FailStopError), then terminated;
   * resolves once every thread has exited. join() then rejects with an
   * FailStopError unless every worker had returned. For `await using guards
   * = await initialize(...)`: a worker that waits forever keeps its process
   * alive, and one leaving the scope early (a throw) leaves none behind.
   */
  close(): Promise<void>;
  /** close(), for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
  /**
   * Config.cluster with spares: from now on a spare that connects is turned
   * away ("the cluster is finishing"). Call it before telling the workers
   * to stop, so that no spare joins after they decided whom to tell; it
   * happens by itself once a worker of this process has ended.
   */
  refuseJoins(): void;
}

/** The WorkerGuards a program receives; the machinery stays on Guards. */
class Handle<R> implements WorkerGuards<R> {
  readonly #guards: Guards<R>;

  constructor(guards: Guards<R>) {
    this.#guards = guards;
  }

  join(): Promise<R[]> {
    return this.#guards.join();
  }

  close(): Promise<void> {
    return this.#guards.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#guards.close();
  }

  refuseJoins(): void {
    this.#guards.refuseJoins();
  }
}

export class Guards<R> {
  private readonly results: R[];
  private readonly exited: boolean[];
  /** Per worker: it reported ready (its function runs, or ran). */
  private readonly started: boolean[];
  private readonly readyCount = { n: 0 };
  private failure: Failure | undefined;
  private readonly joined: Promise<R[]>;
  private settleJoin!: { resolve: (v: R[]) => void; reject: (e: Error) => void };
  private settleReady!: { resolve: () => void; reject: (e: Error) => void };
  /** Resolves once every worker started; rejects if one failed first. */
  readonly ready: Promise<void>;
  /** What initialize() hands the program. */
  readonly handle: WorkerGuards<R> = new Handle(this);

  constructor(
    private readonly workers: Worker[],
    private readonly control: Control,
    private readonly bells: Doorbell[],
    private readonly hooks: GuardHooks = {},
    /** Global index of local worker 0 (cluster processes other than 0). */
    private readonly base = 0,
  ) {
    this.results = new Array<R>(workers.length);
    this.exited = workers.map(() => false);
    this.started = workers.map(() => false);
    this.joined = new Promise((resolve, reject) => (this.settleJoin = { resolve, reject }));
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
    // join() may never be called after a failed start; do not report that as unhandled.
    this.joined.catch(() => {});
    this.ready.catch(() => {});
    workers.forEach((w, i) => this.watch(w, i));
  }

  join(): Promise<R[]> {
    return this.joined;
  }

  /** See WorkerGuards.refuseJoins. */
  refuseJoins(): void {
    this.hooks.refuseJoins?.();
  }

  /** See WorkerGuards.close. */
  async close(): Promise<void> {
    if (!this.exited.every(Boolean)) {
      this.failExternal(new FailStopError(-1, 'the workers were stopped by close()'));
      await Promise.all(this.workers.map((w) => w.terminate()));
    }
    await this.joined.catch(() => {});
  }

  private watch(worker: Worker, index: number): void {
    let reported = false;
    worker.on('message', (report: Report) => {
      switch (report.type) {
        case 'ready':
          this.started[index] = true;
          if (++this.readyCount.n === this.workers.length && this.failure === undefined) this.settleReady.resolve();
          break;
        case 'result':
          reported = true;
          this.results[index] = decodeReturn(report.value) as R;
          setTimeout(() => void worker.terminate(), LINGER_MS).unref();
          break;
        case 'error':
          reported = true;
          this.fail({ worker: index, error: report.error, aborted: report.aborted });
          break;
      }
    });
    worker.on('error', (error) => {
      reported = true;
      this.fail({ worker: index, error: { name: error.name, message: error.message, stack: error.stack }, aborted: false });
    });
    worker.on('exit', (code) => {
      if (!reported) {
        const message = `worker ${this.base + index} exited with code ${code} before returning`;
        this.fail({ worker: index, error: { name: 'Error', message, stack: undefined }, aborted: false });
      }
      this.exited[index] = true;
      this.hooks.exited?.(index);
      if (this.exited.every(Boolean)) this.settle();
    });
  }

  /** A failure from outside: a peer process died or broke the protocol. */
  failExternal(error: Error): void {
    this.fail({ worker: -1, error: { name: error.name, message: error.message, stack: error.stack }, aborted: false, external: error });
  }

  private fail(f: Failure): void {
    // A real failure outranks the FailStopErrors it caused in other workers.
    const first = this.failure === undefined;
    if (first || (this.failure!.aborted && !f.aborted)) this.failure = f;
    if (!this.control.aborted) this.control.abort(f.external ? -1 : this.base + f.worker, this.bells);
    if (first && !f.external) this.hooks.failed?.(this.error().message);
    // One place per kind of failure, whatever the timing: a worker that
    // could not start rejects initialize(); once a worker has started, what
    // goes wrong (its function throws, returns what cannot be sent, exits)
    // rejects join() only, even while other workers are still starting.
    if (f.external === undefined && this.started[f.worker]) this.settleReady.resolve();
    else this.settleReady.reject(this.startError());
    const timer = setTimeout(() => {
      this.workers.forEach((w, i) => {
        if (!this.exited[i]) void w.terminate();
      });
    }, GRACE_MS);
    timer.unref();
  }

  private error(): Error {
    const f = this.failure!;
    if (f.external) return f.external;
    const cause = new Error(f.error.message);
    cause.name = f.error.name;
    if (f.error.stack !== undefined) cause.stack = f.error.stack;
    const worker = this.base + f.worker;
    return new WorkerError(worker, `worker ${worker} failed: ${f.error.name}: ${f.error.message}`, { cause });
  }

  /**
   * What initialize() rejects with when a worker fails before every worker
   * started. A module or export that cannot be used is the caller's mistake,
   * so it surfaces as the ModuleError itself rather than as a worker failure.
   */
  private startError(): Error {
    const e = this.error();
    const f = this.failure!;
    return f.error.name === 'ModuleError' ? new ModuleError(f.error.message, { cause: e }) : e;
  }

  private settle(): void {
    if (this.failure !== undefined) {
      const e = this.error();
      this.settleReady.reject(e);
      this.settleJoin.reject(e);
    } else if (this.hooks.finish) {
      this.hooks.finish().then(
        () => (this.failure ? this.settleJoin.reject(this.error()) : this.settleJoin.resolve(this.results)),
        (e: Error) => this.settleJoin.reject(this.failure && !this.failure.aborted ? this.error() : e),
      );
    } else {
      this.settleJoin.resolve(this.results);
    }
  }
}
