// One value model for every path (docs/semantics.md, "Messages"): what the
// default codec carries arrives the same to oneself, to another thread and
// to another process, and as a task's input and output; what it cannot
// carry is refused with a CodecError that says what it was.

import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { CodecError, Config, IndexedStream, Runtime, codecs, initialize, OperationError } from '../../src/index.ts';
import { launch } from '../../src/cli/launch.ts';
import { canon, samples, value } from './fixtures/values.ts';
import { BadOutput, Echo } from '../runtime/fixtures/operations.ts';

const echo = new URL('./fixtures/values.ts', import.meta.url);
const program = fileURLToPath(new URL('./fixtures/values-program.ts', import.meta.url));
const operations = new URL('../runtime/fixtures/operations.ts', import.meta.url);

/** Encodes like a pusher, decodes from shared memory like a puller. */
function roundTrip(v: unknown): unknown {
  const codec = codecs.msgpack<unknown>();
  const batcher = codec.batcher();
  batcher.add(v);
  const bytes = batcher.take();
  const ring = new Uint8Array(new SharedArrayBuffer(bytes.length));
  ring.set(bytes);
  return codec.decode(ring, 1, false)[0];
}

function refusal(v: unknown): string {
  try {
    roundTrip(v);
  } catch (error) {
    expect(error).toBeInstanceOf(CodecError);
    return (error as Error).message;
  }
  return 'sent';
}

// The paths' sample sets come from a fresh seed each run; a failure names it.
let seed: number | undefined;
afterEach((context) => {
  if (context.task.result?.state === 'fail' && seed !== undefined) console.error(`samples from WEFT_VALUES_SEED=${seed}`);
  seed = undefined;
});

describe('the default codec', () => {
  it('round-trips every value of the model as the model says', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(canon(roundTrip(v))).toEqual(canon(v, true));
      }),
      { numRuns: 1000 },
    );
  });

  it('keeps typed arrays inside objects intact, never stale bytes', () => {
    const got = roundTrip({ id: 1, samples: new Float64Array([0.5, 1.5, 2.5]) }) as { samples: Float64Array };
    expect(got.samples).toBeInstanceOf(Float64Array);
    expect([...got.samples]).toEqual([0.5, 1.5, 2.5]);
  });

  it('refuses what it cannot carry, saying what it was', () => {
    expect(refusal({ f: function handler() {} })).toMatch(/cannot carry a function \(handler\)/);
    expect(refusal(() => 1)).toMatch(/cannot carry a function/);
    expect(refusal({ s: Symbol('s') })).toMatch(/cannot carry a symbol/);
    expect(refusal([Promise.resolve(1)])).toMatch(/cannot carry a Promise \(send what it resolves to\)/);
    expect(refusal(new Map([[1, new WeakMap()]]))).toMatch(/cannot carry a WeakMap/);
    expect(refusal(new SharedArrayBuffer(8))).toMatch(/cannot carry a SharedArrayBuffer/);
    expect(refusal(new Number(1))).toMatch(/cannot carry a Number object/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(refusal(cyclic)).toMatch(/circular structure/);
  });

  it('refuses a bad message alone, as it is added: the rest of its batch is sent', () => {
    const codec = codecs.msgpack<unknown>();
    const batcher = codec.batcher();
    batcher.add(1);
    expect(() => batcher.add({ f: () => 2 })).toThrow(CodecError);
    batcher.add(3);
    expect(codec.decode(batcher.take(), 2, false)).toEqual([1, 3]);
  });

  it('refuses at send to oneself as to another worker', async () => {
    const [own, other] = await (await initialize<string[]>(Config.process(2), { module: echo, export: 'refusals' })).join();
    expect(own).toEqual(other);
    expect(own).toEqual([expect.stringMatching(/^ChannelError: .*refused the message: msgpack cannot carry a function/), expect.stringMatching(/^ChannelError: .*msgpack cannot carry a WeakMap/), 'ok']);
  });
});

describe('every path delivers the same value', () => {
  it("from a worker's return value, as join() resolves it", async () => {
    // Scalars skip the codec on this path (so a worker returning nothing
    // never loads msgpackr): each must still arrive as a channel delivers it.
    const returned = [undefined, null, false, -0, NaN, 2 ** 53 + 2, 'text', { a: -0, f: new Float64Array([1.5, -0]) }];
    for (let at = 0; at < returned.length; at += 4) {
      const values = returned.slice(at, at + 4);
      const got = await (await initialize<unknown>(Config.process(values.length), { module: echo, export: 'returning', args: values })).join();
      expect(got).toEqual(values.map(roundTrip));
      got.forEach((v, i) => expect(Object.is(v, roundTrip(values[i])) || typeof v === 'object').toBe(true));
    }
  }, 180_000);

  it('to oneself and to another thread', async () => {
    seed = Math.floor(Math.random() * 2 ** 31);
    process.env.WEFT_VALUES_SEED = String(seed);
    const expected = samples(seed).map((v) => canon(v, true));
    const results = await (await initialize<{ index: number; got: unknown[] }>(Config.process(2), { module: echo, export: 'echo' })).join();
    expect(results.map((r) => r.index)).toEqual([0, 1]);
    expect(results[0]!.got).toEqual(expected);
    expect(results[1]!.got).toEqual(expected);
  });

  it('to another process', async () => {
    seed = Math.floor(Math.random() * 2 ** 31);
    process.env.WEFT_VALUES_SEED = String(seed);
    const expected = samples(seed).map((v) => canon(v, true));
    const lines: string[] = [];
    const out = new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) });
    const errors: string[] = [];
    const err = new Writable({ write: (chunk: Buffer, _e, done) => (errors.push(chunk.toString()), done()) });
    const code = await launch({ processes: 2, threads: 1, script: program, args: [], out, err });
    expect(errors.join('')).not.toMatch(/Error/);
    expect(code).toBe(0);
    const byProcess = Object.fromEntries(lines.join('').trim().split('\n').map((l) => [l.slice(1, 2), JSON.parse(l.slice(4)) as { index: number; got: unknown[] }[]]));
    expect(byProcess['0']![0]!.got).toEqual(expected);
    expect(byProcess['1']![0]!.index).toBe(1);
    expect(byProcess['1']![0]!.got).toEqual(expected);
  });

  it.each([
    ['Runtime.local()', () => Promise.resolve(Runtime.local())],
    ['Runtime.inMemory()', () => Runtime.inMemory({ workers: 1, operations })],
  ])('as task inputs and outputs on %s', async (_name, start) => {
    const runtime = await start();
    try {
      const inputs = fc.sample(value, { seed: 7, numRuns: 100 });
      const outputs = await IndexedStream.from(inputs).map(Echo).run(runtime);
      expect(outputs.map((o) => canon(o))).toEqual(inputs.map((v) => canon(v, true)));
      const input = await IndexedStream.from([1, { f: () => 1 }]).map(Echo).run(runtime).catch((e: unknown) => e);
      expect(input).toBeInstanceOf(OperationError);
      expect((input as Error).message).toBe('operation test.Echo failed on input index 1 (attempt 1): CodecError: msgpack cannot carry a function (f)');
      for (const kind of ['function', 'weakmap'] as const) {
        const failure = await runtime.call(BadOutput, { kind }).catch((e: unknown) => e);
        expect(failure).toBeInstanceOf(OperationError);
        expect((failure as Error).message).toMatch(/OutputError: the output (is a function|cannot be encoded: msgpack cannot carry a WeakMap)/);
      }
    } finally {
      await runtime.close();
    }
  });
});
