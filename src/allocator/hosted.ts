// A pool of worker threads around an endpoint on the main thread (the host),
// for the task runtime. Unlike initialize() it is not fail-stop: the runtime
// must outlive a worker that dies mid-task, so a death is an event, and
// replace() starts a newcomer on fresh rings. Old rings are dropped rather
// than reused because a dead thread may have left a frame half-read or
// half-written in them; with fresh rings both ends start at sequence 0 and
// nothing of the dead worker can leak into the newcomer's stream.
//
// The topology is a star: workers talk to the host (and themselves) only.

import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { WorkerAllocator, type Allocator } from './allocator.ts';
import { Endpoint } from './endpoint.ts';
import { DEFAULT_HIGH_WATER_BYTES, DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_RING_BYTES, DEFAULT_SLAB_BYTES } from './config.ts';
import { buildFabric, relink, type Wiring } from '../transport/index.ts';
import { startThread, type Task } from './thread.ts';
import { moduleUrl } from './module-url.ts';
import type { Report } from './returns.ts';
import { Control } from '../transport/index.ts';
import { Doorbell } from '../transport/index.ts';
import { ConfigError, ModuleError, WorkerError } from '../errors.ts';

export interface HostedOptions {
  workers: number;
  module: URL | string;
  export?: string;
  /** File URLs the workers import later by themselves (operations): TypeScript there turns tsx on. */
  imports?: readonly string[];
  ringBytes?: number;
  maxMessageBytes?: number;
}

interface Slot {
  thread: Worker;
  wiring: Wiring;
  exited: Promise<void>;
}

export class Hosted extends EventEmitter<{ exit: [index: number, error: Error | undefined] }> {
  /** The host's allocator, for the runtime on the main thread. */
  readonly host: Allocator;
  private readonly endpoint: Endpoint;
  private readonly slots: Slot[] = [];
  private closing = false;

  private constructor(
    private readonly task: Task,
    private readonly hostWiring: Wiring,
    private readonly ringBytes: number,
  ) {
    super();
    this.endpoint = new Endpoint(hostWiring);
    this.host = new WorkerAllocator(this.endpoint);
  }

  static async start(o: HostedOptions): Promise<Hosted> {
    if (!Number.isInteger(o.workers) || o.workers < 1) throw new ConfigError(`workers must be a positive integer, got ${JSON.stringify(o.workers)}`);
    const ringBytes = o.ringBytes ?? DEFAULT_RING_BYTES;
    const hostIndex = o.workers;
    const fabric = buildFabric(o.workers + 1, ringBytes, { maxMessageBytes: o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, highWaterBytes: DEFAULT_HIGH_WATER_BYTES, maxBacklogBytes: DEFAULT_MAX_BACKLOG_BYTES, slabBytes: DEFAULT_SLAB_BYTES }, (a, b) => a === hostIndex || b === hostIndex);
    const pool = new Hosted({ mode: 'module', module: moduleUrl(o.module), export: o.export ?? 'default', imports: o.imports ?? [] }, isolate(fabric.wirings[hostIndex]!), ringBytes);
    try {
      await Promise.all(fabric.wirings.slice(0, hostIndex).map((w) => pool.spawn(isolate(w))));
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  get workers(): number {
    return this.hostWiring.index;
  }

  private spawn(wiring: Wiring): Promise<void> {
    const thread = startThread(this.task, wiring);
    let failure: Error | undefined;
    let started = false;
    const exited = new Promise<void>((done) => thread.once('exit', () => done()));
    this.slots[wiring.index] = { thread, wiring, exited };
    return new Promise<void>((ready, refuse) => {
      thread.on('message', (r: Report) => {
        if (r.type === 'ready') {
          started = true;
          ready();
        } else if (r.type === 'error') {
          failure = Object.assign(new Error(r.error.message), { name: r.error.name, stack: r.error.stack });
        }
      });
      thread.on('error', (e) => (failure = e));
      thread.on('exit', (code) => {
        const error = failure ?? (code !== 0 ? new WorkerError(wiring.index, `worker ${wiring.index} exited with code ${code}`) : undefined);
        if (!started) refuse(new ModuleError(`worker ${wiring.index} failed to start: ${error?.message ?? 'it exited'}`, { cause: error }));
        else if (!this.closing) this.emit('exit', wiring.index, error);
      });
    });
  }

  /** Starts a new thread at `index` on fresh rings; the old one is stopped if still running. */
  async replace(index: number): Promise<void> {
    const slot = this.slots[index];
    if (slot === undefined) throw new ConfigError(`no worker ${index} in this pool`);
    await slot.thread.terminate();
    new Doorbell(slot.wiring.bell).clearWaits();
    const wiring = isolate({ ...slot.wiring });
    const { hostOut, hostIn } = relink(this.hostWiring, wiring, this.ringBytes);
    this.endpoint.rewire(index, hostOut, hostIn);
    await this.spawn(wiring);
  }

  /** Stops every worker: parked ones wake with FailStopError, the rest are terminated. */
  async close(): Promise<void> {
    this.closing = true;
    for (const s of this.slots) new Control(s.wiring.control).abort(this.hostWiring.index, [new Doorbell(s.wiring.bell)]);
    await Promise.all(this.slots.map((s) => s.thread.terminate().then(() => s.exited)));
  }
}

/** Each worker gets its own abort flag: in a pool, one failure stops only itself. */
function isolate(w: Wiring): Wiring {
  return { ...w, control: Control.buffer(), bells: [w.bell] };
}
