// Collectives over one channel: a barrier and an all-reduce across every
// worker, built only on the channel API a user has. Each call is a round;
// every worker sends its values to every worker, itself included, and waits
// for one message per worker of that round. A worker can be at most one
// round ahead of another (it left round r only after every worker's round-r
// message reached it, so every worker had entered round r), so a message of
// round r + 1 met while waiting for round r is kept for the next call.

import type { Allocator } from './allocator.ts';
import { codecs } from './codec.ts';
import type { Pull } from './pull.ts';
import type { Push } from './push.ts';
import { ChannelError } from '../errors.ts';

/** How allReduce combines the workers' values, element by element. */
export type ReduceOp = 'sum' | 'min' | 'max';

/** A barrier and an all-reduce across every worker of the run, over one channel. */
export interface Collectives {
  /** Returns once every worker has called barrier() (or allReduce) this many times. */
  barrier(): void;
  /**
   * Combines `values` (the same length on every worker) element by element
   * across all workers, and returns the result, the same on every worker.
   * Blocks the thread (as awaitEvents does) until every worker contributed.
   */
  allReduce(values: ArrayLike<number>, op?: ReduceOp): Float64Array;
}

// Header of every message: round number, sender.
const HEADER = 2;

class ChannelCollectives implements Collectives {
  private round = 0;
  /** Messages of the next round that arrived early. */
  private early: Float64Array[] = [];

  private readonly allocator: Allocator;
  private readonly pushes: Push<Float64Array>[];
  private readonly pull: Pull<Float64Array>;

  constructor(allocator: Allocator, pushes: Push<Float64Array>[], pull: Pull<Float64Array>) {
    this.allocator = allocator;
    this.pushes = pushes;
    this.pull = pull;
  }

  barrier(): void {
    this.allReduce([], 'sum');
  }

  allReduce(values: ArrayLike<number>, op: ReduceOp = 'sum'): Float64Array {
    if (op !== 'sum' && op !== 'min' && op !== 'max') throw new ChannelError(this.pull.channel, `allReduce takes 'sum', 'min' or 'max', got ${String(op)}`);
    const round = this.round++;
    const message = new Float64Array(HEADER + values.length);
    message[0] = round;
    message[1] = this.allocator.index;
    message.set(Array.from(values), HEADER);
    for (const push of this.pushes) push.send(message);
    this.allocator.release();
    const result = new Float64Array(values.length);
    const seen = new Uint8Array(this.allocator.peers);
    let missing = this.allocator.peers;
    const take = (m: Float64Array): void => {
      if (m.length !== message.length) throw new ChannelError(this.pull.channel, `allReduce: worker ${m[1]} gave ${m.length - HEADER} values, worker ${this.allocator.index} ${values.length}`);
      const from = m[1]!;
      if (seen[from] === 1) throw new ChannelError(this.pull.channel, `allReduce: two messages of round ${round} from worker ${from}`);
      seen[from] = 1;
      missing--;
      const first = missing === this.allocator.peers - 1;
      for (let i = 0; i < result.length; i++) {
        const v = m[HEADER + i]!;
        result[i] = first ? v : op === 'sum' ? result[i]! + v : op === 'min' ? Math.min(result[i]!, v) : Math.max(result[i]!, v);
      }
    };
    const pending = this.early;
    this.early = [];
    for (const m of pending) {
      if (m[0] === round) take(m);
      else this.early.push(m);
    }
    while (missing > 0) {
      this.allocator.receive();
      let m = this.pull.recv();
      if (m === undefined) {
        this.allocator.awaitEvents(100);
        continue;
      }
      while (m !== undefined) {
        if (m[0] === round) take(m);
        else if (m[0] === round + 1) this.early.push(m);
        else throw new ChannelError(this.pull.channel, `allReduce: a message of round ${m[0]} while in round ${round}`);
        if (missing === 0) break;
        m = this.pull.recv();
      }
    }
    return result;
  }
}

/**
 * Allocates channel `channel` for collectives. Every worker calls it with
 * the same id, and then calls barrier() and allReduce() in the same order.
 */
export function collectives(allocator: Allocator, channel: number): Collectives {
  const [pushes, pull] = allocator.allocate(channel, codecs.typedArray(Float64Array));
  return new ChannelCollectives(allocator, pushes, pull);
}
