// Sources: where records enter. Each worker's source is polled by the
// scheduler one batch at a time, so a worker keeps receiving (and answering
// its peers) while it produces. A source closes every epoch up to the one it
// is in (epochs are integers, in order), and ends when exhausted: an end
// closes every later epoch too.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { codecs, type Pull, type Push } from '../allocator/index.ts';
import { checkSenders, DataflowError, Output, type Scope, type Task, type Time } from './core.ts';
import { Stream } from './stream.ts';

const BATCH = 1024;
/**
 * How far a source may move its epoch in one step. Every epoch passed is
 * closed one by one (a marker to every worker on every exchange): a jump to
 * a clock reading would close a billion epochs, so it fails, with a message
 * that says so, rather than run out of memory.
 */
const MAX_EPOCH_STEP = 1 << 16;

/** Feeds records with their epochs, closing epochs as they pass. */
class Feeder<T> {
  readonly out = new Output<T>();
  private epoch = 0;
  private pending: T[] = [];

  push(epoch: number, record: T): void {
    if (epoch !== this.epoch) this.advance(epoch);
    this.pending.push(record);
    if (this.pending.length >= BATCH) this.flush();
  }

  flush(): void {
    if (this.pending.length === 0) return;
    this.out.batch(this.epoch, this.pending);
    this.pending = [];
  }

  private advance(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < this.epoch) throw new DataflowError(`source epochs are integers that never decrease: ${typeof epoch === 'number' ? epoch : `${JSON.stringify(epoch)} (a ${typeof epoch})`} after ${this.epoch}`);
    if (epoch - this.epoch > MAX_EPOCH_STEP) throw new DataflowError(`source epochs advance at most ${MAX_EPOCH_STEP} at a time (each epoch passed is closed on every exchange): ${epoch} after ${this.epoch}; number epochs 0, 1, 2, ...`);
    this.flush();
    for (let e = this.epoch; e < epoch; e++) this.out.close(e);
    this.epoch = epoch;
  }

  finish(): void {
    this.flush();
    this.out.close(this.epoch);
    this.out.end();
  }
}

/** This worker's records from `source`, all at epoch 0 unless `epochOf` says (epochs must not decrease). */
export function fromIterable<T>(scope: Scope, source: Iterable<T>, epochOf?: (record: T) => Time): Stream<T> {
  // The scheduler polls a source between its other tasks, so it must answer at once: an async iterable cannot.
  if (typeof (source as Partial<Iterable<T>> | null)?.[Symbol.iterator] !== 'function') {
    const async = typeof (source as Partial<AsyncIterable<T>> | null)?.[Symbol.asyncIterator] === 'function';
    throw new DataflowError(`fromIterable takes a (synchronous) iterable, got ${async ? 'an async iterable: read it first, or feed the workers from a file (readFile)' : typeof source === 'object' && source !== null ? `${(source as object).constructor?.name ?? 'an object'}` : String(source)}`);
  }
  const feeder = new Feeder<T>();
  const it = source[Symbol.iterator]();
  const task: Task & { finished: boolean } = {
    finished: false,
    step() {
      for (let i = 0; i < BATCH; i++) {
        const next = it.next();
        if (next.done === true) {
          feeder.finish();
          task.finished = true;
          return true;
        }
        feeder.push(epochOf === undefined ? 0 : epochOf(next.value), next.value);
      }
      feeder.flush();
      return true;
    },
  };
  scope.schedule(task);
  return new Stream(scope, feeder.out);
}

/** The integers from `start` to `end` (excluded) at epoch 0, each worker taking one contiguous part. */
export function range(scope: Scope, start: number, end: number): Stream<number> {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) throw new DataflowError(`range takes safe integers, got ${start} and ${end}`);
  const n = Math.max(0, end - start);
  const from = start + Math.floor((n * scope.index) / scope.peers);
  const to = start + Math.floor((n * (scope.index + 1)) / scope.peers);
  function* part(): Generator<number> {
    for (let i = from; i < to; i++) yield i;
  }
  return fromIterable(scope, part());
}

/** Options of readFile. */
export interface FileOptions {
  /** Bytes per range taken at a time; default: the file over 64 per worker, within 64 KiB .. 1 MiB. */
  chunkBytes?: number;
}

// Claims on the file's ranges: worker 0 holds the counter; others ask it
// and keep two ranges asked for or in hand, so the next one is there when
// they finish one. Asks and answers are flushed at once, not held until the
// end of the scheduler's round: worker 0 answers between two of its own
// ranges, and an answer held through the next one would leave the asker
// idle (it was a third of worker 1's time). Small ranges (1 MiB at most)
// keep that wait short and let a faster worker take more.
type Claim = [number, number];
const ASK = -2;
const AHEAD = 2;

class FileSource implements Task {
  readonly out = new Output<Uint8Array>();
  finished = false;
  private readonly fd: number;
  private readonly size: number;
  private readonly chunk: number;
  private readonly chunks: number;
  private readonly self: number;
  private readonly peers: number;
  private readonly pushes: Push<Claim>[];
  private readonly pull: Pull<Claim>;
  private buffer: Uint8Array;
  /** Worker 0: the next range to hand out; workers that were told there is none left. */
  private next = 0;
  private readonly told: Set<number> = new Set();
  /** Others: requests in flight, ranges granted. */
  private asked = 0;
  private readonly granted: number[] = [];
  private exhausted = false;

  constructor(scope: Scope, path: string, options: FileOptions) {
    this.self = scope.index;
    this.peers = scope.peers;
    try {
      this.fd = openSync(path, 'r');
    } catch (error) {
      throw new DataflowError(`readFile: cannot open ${path}: ${(error as Error).message}`, { cause: error });
    }
    const stat = fstatSync(this.fd);
    if (!stat.isFile()) {
      closeSync(this.fd);
      throw new DataflowError(`readFile: ${path} is not a file`);
    }
    this.size = stat.size;
    const given = options.chunkBytes;
    if (given !== undefined && (!Number.isInteger(given) || given < 1)) throw new DataflowError(`readFile: chunkBytes is an integer >= 1, got ${String(given)}`);
    this.chunk = given ?? Math.min(1 << 20, Math.max(64 << 10, Math.ceil(this.size / (64 * scope.peers))));
    this.chunks = Math.ceil(this.size / this.chunk);
    this.buffer = new Uint8Array(this.chunk + (64 << 10));
    [this.pushes, this.pull] = scope.channel(codecs.msgpack<Claim>());
    scope.schedule(this);
  }

  step(): boolean {
    let any = false;
    for (let m = this.pull.recv(); m !== undefined; m = this.pull.recv()) {
      any = true;
      if (this.self === 0) {
        const range = this.next < this.chunks ? this.next++ : -1;
        if (range < 0) this.told.add(m[0]);
        const push = this.pushes[m[0]]!;
        push.send([0, range]);
        push.flush();
      } else {
        this.asked--;
        if (m[1] < 0) this.exhausted = true;
        else this.granted.push(m[1]);
      }
    }
    let range: number | undefined;
    if (this.self === 0) {
      if (this.next < this.chunks) range = this.next++;
      else this.exhausted = true;
    } else {
      while (!this.exhausted && this.asked + this.granted.length < AHEAD) {
        this.pushes[0]!.send([this.self, ASK]);
        this.pushes[0]!.flush();
        this.asked++;
      }
      range = this.granted.shift();
    }
    if (range !== undefined) {
      this.emit(range);
      return true;
    }
    if (this.exhausted && this.granted.length === 0 && (this.self !== 0 || this.told.size === this.peers - 1)) {
      this.out.close(0);
      this.out.end();
      closeSync(this.fd);
      this.finished = true;
      return true;
    }
    // Worker 0 waits for every other worker to be told the file is done; they wait for its answers.
    if (!any) checkSenders(this.pull, this.peers, (sender) => (this.self === 0 ? sender === 0 || this.told.has(sender) : sender !== 0 || this.exhausted), 'readFile');
    return any;
  }

  /** Emits the lines that start in range i: from the first line start at or after its first byte, through the end of the line holding its last byte. */
  private emit(i: number): void {
    const start = i * this.chunk;
    const end = Math.min(this.size, start + this.chunk);
    // From one byte before: whether `start` begins a line.
    const from = start === 0 ? 0 : start - 1;
    const stop = end - from;
    let filled = this.read(from, 0, stop);
    let first = 0;
    if (start > 0) {
      const nl = this.buffer.subarray(0, filled).indexOf(10);
      if (nl < 0 || nl + 1 >= stop) return; // no line starts in this range
      first = nl + 1;
    }
    let scan = stop - 1;
    let last = -1;
    while (last < 0) {
      const nl = this.buffer.subarray(0, filled).indexOf(10, scan);
      if (nl >= 0) last = nl + 1;
      else if (from + filled >= this.size) last = filled;
      else {
        if (filled + (64 << 10) > this.buffer.length) {
          const bigger = new Uint8Array(this.buffer.length * 2);
          bigger.set(this.buffer.subarray(0, filled));
          this.buffer = bigger;
        }
        scan = filled;
        filled += this.read(from + filled, filled, 64 << 10);
      }
    }
    this.out.batch(0, [this.buffer.subarray(first, last)]);
  }

  private read(position: number, offset: number, length: number): number {
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, this.buffer, offset + done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }
}

/**
 * A file cut into line-aligned byte ranges, taken by whichever worker is
 * free. Each record is the bytes of whole lines (each ending with \n, but
 * maybe the file's last); a record is a view of a reused buffer, valid only
 * while the operator receiving it runs: copy what must live on.
 */
export function readFile(scope: Scope, path: string, options: FileOptions = {}): Stream<Uint8Array> {
  return new Stream(scope, new FileSource(scope, path, options).out);
}

/** The lines of a file (latin1, without their \n), spread over the workers as readFile's ranges are. */
export function readLines(scope: Scope, path: string, options: FileOptions = {}): Stream<string> {
  return readFile(scope, path, options).flatMap((bytes) => {
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines;
  });
}
