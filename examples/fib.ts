// Paladin's example: fib of 1..10 on worker threads, summed. 143.
//   npx tsx examples/fib.ts
//
// The workers import this very script to find the operations by name (the
// `operations` option can name another module). Inside a worker the script
// stops at `Runtime.inMemory`, so the directive runs only in the main thread:
// define operations above that call.
import { Runtime, IndexedStream, defineOperation, defineMonoid, progressBar } from '../src/index.ts';

function fib(n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

export const FibAt = defineOperation('FibAt', (n: number) => fib(n));
export const Sum = defineMonoid('Sum', { empty: () => 0, combine: (a: number, b: number) => a + b });

const runtime = await Runtime.inMemory({ workers: 2 });
// On a terminal, progressBar() draws the directive's progress on stderr (nothing when stderr is piped).
const total = await IndexedStream.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).map(FibAt).fold(Sum).run(runtime, { onProgress: progressBar({ label: 'fib' }) });
console.log('sum of fib(1..10):', total);
await runtime.close();
