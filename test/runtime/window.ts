// Runs `count` items of an async source through `op` and a Sum fold with
// `maxInFlight`, and reports how far the source was ever pulled ahead of
// the results: the lazy-input check, shared by every backend's tests.

import { IndexedStream, type Operation, type Runtime } from '../../src/runtime/index.ts';
import { Sum } from './fixtures/operations.ts';

export async function pullAhead(runtime: Runtime, op: Operation<number, number>, count: number, maxInFlight: number): Promise<{ total: number; widest: number }> {
  let pulled = 0;
  let done = 0;
  let widest = 0;
  async function* numbers() {
    for (let i = 0; i < count; i++) {
      widest = Math.max(widest, pulled - done);
      pulled++;
      yield i;
    }
  }
  const total = await IndexedStream.from(numbers())
    .map(op)
    .fold(Sum)
    .run(runtime, { maxInFlight, onProgress: (progress) => (done = progress.done) });
  return { total, widest };
}
