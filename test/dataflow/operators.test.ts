// Each operator against a plain-JavaScript model on random inputs, on 1 to 3
// workers, with sources that pause at random so deliveries interleave
// differently each run: outputs equal the model's, and a reduce emits each
// key exactly once per epoch, before its epoch closes, at the key's owner.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Config, initialize } from '../../src/index.ts';
import { owner } from '../../src/dataflow/index.ts';
import { typesOf, type CompositeSeen, type KeyRec, type NumericSeen, type Purchase, type Rec, type Seen } from './fixtures/dataflows.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const fixtures = new URL('./fixtures/dataflows.ts', import.meta.url);

const sorted = <T>(xs: T[]): string[] => xs.map((x) => JSON.stringify(x)).sort();

/** Sums per (key, epoch). */
function sums(records: Rec[]): [number, number, number][] {
  const m = new Map<string, [number, number, number]>();
  for (const [k, v, e] of records) {
    const id = `${k}/${e}`;
    const had = m.get(id);
    if (had === undefined) m.set(id, [k, v, e]);
    else had[1] += v;
  }
  return [...m.values()];
}

const records = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: -50, max: 50 }), fc.integer({ min: 0, max: 3 })), { maxLength: 3000 })
  .map((rs) => rs.sort((a, b) => a[2] - b[2]) as Rec[]);

describe('weft/dataflow operators', () => {
  it('map, filter, flatMap, exchange, reduceByKey (with and without combiner), join and concat equal the model', { timeout: 300_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(records, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 ** 30 }), async (input, workers, seed) => {
        const guards = await initialize<Seen>(Config.process(workers), { module: fixtures, export: 'operators', args: { records: input, seed } });
        const seen = await guards.join();
        const all = <K extends keyof Seen>(k: K): Seen[K] => seen.flatMap((s) => s[k] as unknown[]) as Seen[K];

        const mapped = input.map((r): Rec => [r[0], r[1] * 2, r[2]]).filter((r) => r[1] % 3 !== 0).flatMap((r) => (r[0] % 2 === 1 ? [r, r] : [r]));
        expect(sorted(all('mapped'))).toEqual(sorted(mapped.map((r) => [r, r[2]])));
        expect(sorted(all('exchanged'))).toEqual(sorted(mapped.map((r) => [r, r[2]])));
        for (const s of seen) for (const [r] of s.exchanged) expect(owner(r[0], workers)).toBe(s.worker);

        expect(sorted(all('reduced'))).toEqual(sorted(sums(input)));
        expect(sorted(all('plain'))).toEqual(sorted(sums(input)));
        for (const s of seen) {
          for (const [k] of s.reduced) expect(owner(k, workers)).toBe(s.worker);
          expect(s.late).toEqual([]);
          // Every epoch any worker had closes exactly once on every worker.
          const epochs = [...new Set(input.map((r) => r[2]))].sort();
          expect([...s.closes].sort()).toEqual(epochs.length === 0 ? [0] : Array.from({ length: epochs.at(-1)! + 1 }, (_, e) => e));
        }

        const joined = input.flatMap((a) => input.filter((b) => b[1] % 2 === 0 && b[0] === a[0] && b[2] === a[2]).map((b) => [a, b, a[2]]));
        expect(sorted(all('joined'))).toEqual(sorted(joined));
        expect(sorted(all('concat'))).toEqual(sorted([...input, ...input.map((r): Rec => [r[0] + 1000, r[1], r[2]])].map((r) => [r, r[2]])));
      }),
      { numRuns: 6 },
    );
  });

  it('sumByBytes, exchangeColumns and broadcastColumns equal the model: one sum per key and epoch, pairs at the owner of their id or everywhere in order, values alone everywhere in order', { timeout: 300_000 }, async () => {
    // Keys of 256 bytes and more, and sums that are not 32-bit integers, cross in the wide form.
    const key = fc.oneof(fc.constantFrom('a', 'the', 'The', '', 'x'.repeat(300)), fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }).map((cs) => String.fromCharCode(...cs)));
    const value = fc.oneof(fc.integer({ min: -50, max: 50 }), fc.constantFrom(0.5, -0.25, 2 ** 40));
    const keys = fc.array(fc.tuple(key, value, fc.integer({ min: 0, max: 3 })), { maxLength: 3000 }).map((rs) => rs.sort((a, b) => a[2] - b[2]) as KeyRec[]);
    const id = fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 2 ** 31, max: 2 ** 40 }));
    const pairs = fc.array(fc.tuple(id, fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: 0, max: 3 })), { maxLength: 3000 }).map((rs) => rs.sort((a, b) => a[2] - b[2]) as Rec[]);
    await fc.assert(
      fc.asyncProperty(keys, pairs, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 ** 30 }), async (keyed, numbered, workers, seed) => {
        const guards = await initialize<NumericSeen>(Config.process(workers), { module: fixtures, export: 'numeric', args: { keys: keyed, pairs: numbered, seed } });
        const seen = await guards.join();
        const model = new Map<string, [string, number, number]>();
        for (const [k, v, e] of keyed) {
          const had = model.get(`${e}/${k}`);
          if (had === undefined) model.set(`${e}/${k}`, [k, v, e]);
          else had[1] += v;
        }
        // sorted() compares all emissions: a key emitted twice (or by two workers) would show.
        expect(sorted(seen.flatMap((s) => s.sums))).toEqual(sorted([...model.values()]));
        const epochs = [...new Set(keyed.map((r) => r[2]))].sort();
        for (const s of seen) {
          expect(s.late).toEqual([]);
          expect([...s.closes].sort()).toEqual(epochs.length === 0 ? [0] : Array.from({ length: epochs.at(-1)! + 1 }, (_, e) => e));
          for (const [i] of s.columns) expect(i % workers).toBe(s.worker);
        }
        expect(sorted(seen.flatMap((s) => s.columns))).toEqual(sorted(numbered));
        // Every worker gets every pair, each from the worker whose share it was, in that worker's order.
        for (const s of seen) {
          expect(sorted(s.broadcast.map(([, i, v, t]) => [i, v, t]))).toEqual(sorted(numbered));
          for (let w = 0; w < workers; w++) {
            const mine = numbered.filter((_, k) => k % workers === w);
            expect(s.broadcast.filter((b) => b[0] === w).map(([, i, v, t]) => [i, v, t])).toEqual(mine);
            expect(s.values.filter((b) => b[0] === w).map(([, v, t]) => [v, t])).toEqual(mine.map(([, v, t]) => [v, t]));
          }
        }
        // Typed columns arrive as the types they were sent as, at the owner of their id or everywhere, each sender's of one parity (one record) in its order.
        const typed = (ps: Rec[]): [number, number, number, string, string][] =>
          ps.filter(([i]) => i <= 100).map(([i, v, t]) => {
            const [ids, values] = typesOf(t, Math.abs(v % 2));
            return [i, v, t, ids.name, values.name];
          });
        expect(sorted(seen.flatMap((s) => s.typed))).toEqual(sorted(typed(numbered)));
        for (const s of seen) {
          for (const [i] of s.typed) expect(i % workers).toBe(s.worker);
          for (let w = 0; w < workers; w++) {
            const mine = typed(numbered.filter((_, k) => k % workers === w));
            const got = s.typedBroadcast.filter((b) => b[0] === w).map(([, ...rest]) => rest);
            for (const parity of [0, 1]) expect(got.filter(([, v]) => Math.abs(v % 2) === parity)).toEqual(mine.filter(([, v]) => Math.abs(v % 2) === parity));
            expect(got.length).toBe(mine.length);
          }
        }
      }),
      { numRuns: 6 },
    );
  });

  it('sumByBytes sums the empty key once per epoch, however often it occurs', { timeout: 120_000 }, async () => {
    for (const workers of [1, 2]) {
      const keyed: KeyRec[] = [['', 1, 0], ['a', 1, 0], ['', 2, 0], ['', 0, 2], ['', 0, 2]];
      const guards = await initialize<NumericSeen>(Config.process(workers), { module: fixtures, export: 'numeric', args: { keys: keyed, pairs: [], seed: 1 } });
      const sums = (await guards.join()).flatMap((s) => s.sums);
      expect(sorted(sums)).toEqual(sorted([['', 3, 0], ['a', 1, 0], ['', 0, 2]]));
    }
  });

  it('exchange by key: keys of any type land on their owner, each exactly once per sender', { timeout: 120_000 }, async () => {
    const guards = await initialize<{ count: number; owned: boolean }>(Config.process(3), { module: fixtures, export: 'owners' });
    const got = await guards.join();
    expect(got.every((g) => g.owned)).toBe(true);
    expect(got.reduce((n, g) => n + g.count, 0)).toBe(7 * 3);
  });

  it('sumByBytes addTokens equals the model: every token of a range, folded by the table, summed once per key and epoch', { timeout: 300_000 }, async () => {
    // Few byte values, so tokens repeat; any of them may be a separator.
    const text = fc.array(fc.constantFrom(0x00, 0x20, 0x2c, 0x30, 0x41, 0x61, 0x7a, 0xff), { maxLength: 12 }).map((bs) => String.fromCharCode(...bs));
    const texts = fc.array(fc.tuple(text, fc.integer({ min: -5, max: 5 }), fc.integer({ min: 0, max: 3 })), { maxLength: 2000 }).map((rs) => rs.sort((a, b) => a[2] - b[2]) as KeyRec[]);
    const fold = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 255 })), { minLength: 256, maxLength: 256 });
    await fc.assert(
      fc.asyncProperty(texts, fold, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 ** 30 }), async (list, table, workers, seed) => {
        const guards = await initialize<[string, number, number][]>(Config.process(workers), { module: fixtures, export: 'tokens', args: { texts: list, fold: table, seed } });
        const got = (await guards.join()).flat();
        // The fixture wraps each text in < and >, which addTokens' range leaves out.
        const model = new Map<string, [string, number, number]>();
        for (const [s, v, e] of list) {
          const folded = Array.from(s, (ch) => table[ch.charCodeAt(0)]!);
          for (const token of String.fromCharCode(...folded).split('\0')) {
            if (token === '') continue;
            const had = model.get(`${e}/${token}`);
            if (had === undefined) model.set(`${e}/${token}`, [token, v, e]);
            else had[1] += v;
          }
        }
        expect(sorted(got)).toEqual(sorted([...model.values()]));
      }),
      { numRuns: 6 },
    );
  });

  it('sumByBytes refuses a key range outside its bytes and a fold table not of 256 bytes, naming them', { timeout: 120_000 }, async () => {
    const fails = async (how: string): Promise<void> => {
      const guards = await initialize<number>(Config.process(2), { module: fixtures, export: 'badRange', args: { how } });
      await guards.join();
    };
    await expect(fails('add')).rejects.toThrow(/sumByBytes: add\(bytes, 1, 9\) is not a range of 3 bytes/);
    await expect(fails('addTokens')).rejects.toThrow(/sumByBytes: addTokens\(bytes, 2, 1\) is not a range of 3 bytes/);
    await expect(fails('fold')).rejects.toThrow(/sumByBytes: addTokens takes a fold table of 256 bytes \(a Uint8Array\), got 255 bytes/);
  });

  it('exchangeColumns refuses columns that are not numeric typed arrays and negative ids, naming them', { timeout: 120_000 }, async () => {
    const fails = async (what: string): Promise<void> => {
      const guards = await initialize<number>(Config.process(2), { module: fixtures, export: 'badColumns', args: { what } });
      await guards.join();
    };
    await expect(fails('bigint')).rejects.toThrow(/exchangeColumns: columns are Float64Array, .*; got BigInt64Array/);
    await expect(fails('array')).rejects.toThrow(/exchangeColumns: columns are Float64Array, .*; got Array/);
    await expect(fails('negative')).rejects.toThrow(/exchangeColumns: ids are integers >= 0 \(< 2\^53\), got -4/);
  });

  it('dataflows run one after another on the same workers, with no options, each equal to its model', { timeout: 120_000 }, async () => {
    const values = Array.from({ length: 500 }, (_, i) => (i * 7919) % 1000);
    const edges: [number, number][] = [[1, 2], [2, 3], [5, 6], [7, 7], [3, 1]];
    for (const workers of [1, 3]) {
      const guards = await initialize<[number, number][][]>(Config.process(workers), { module: fixtures, export: 'sequential', args: { values, edges } });
      const got = await guards.join();
      const model = (scale: number): [number, number][] => [0, 1, 2, 3, 4].map((k) => [k, values.filter((v) => v % 5 === k).reduce((a, v) => a + v * scale, 0)]);
      expect(sorted(got.flatMap((g) => g[0]!))).toEqual(sorted(model(1)));
      expect(sorted(got.flatMap((g) => g[1]!))).toEqual(sorted(model(2)));
      expect(new Map(got.flatMap((g) => g[2]!))).toEqual(new Map([[1, 1], [2, 1], [3, 1], [5, 5], [6, 5], [7, 7]]));
    }
  });

  it('a worker that throws fails the dataflow with its error', { timeout: 120_000 }, async () => {
    const guards = await initialize<number>(Config.process(3), { module: fixtures, export: 'throwing' });
    await expect(guards.join()).rejects.toThrow(/worker 1 failed: Error: record 4321 is cursed/);
  });
});

describe('weft/dataflow keys and misuse', () => {
  it('reduceByKey and join by array and object keys made afresh per record equal the model: one total per key and epoch, every pair once', { timeout: 300_000 }, async () => {
    const purchases = fc
      .array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.constantFrom('mon', 'tue', 'wed'), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 2 })), { maxLength: 400 })
      .map((rs) => rs.sort((a, b) => a[3] - b[3]) as Purchase[]);
    await fc.assert(
      fc.asyncProperty(purchases, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 ** 30 }), async (input, workers, seed) => {
        const guards = await initialize<CompositeSeen>(Config.process(workers), { module: fixtures, export: 'composite', args: { records: input, seed } });
        const seen = await guards.join();
        const totals = new Map<string, [[number, string], number, number]>();
        const counts = new Map<string, [number, number, number]>();
        for (const [user, day, amount, e] of input) {
          const t = totals.get(JSON.stringify([user, day, e]));
          if (t === undefined) totals.set(JSON.stringify([user, day, e]), [[user, day], amount, e]);
          else t[1] += amount;
          const c = counts.get(JSON.stringify([user, e]));
          if (c === undefined) counts.set(JSON.stringify([user, e]), [user, 1, e]);
          else c[1]++;
        }
        expect(sorted(seen.flatMap((s) => s.totals))).toEqual(sorted([...totals.values()]));
        expect(sorted(seen.flatMap((s) => s.counts))).toEqual(sorted([...counts.values()]));
        const joined = input.flatMap((a) => input.filter((b) => b[2] >= 10 && b[0] === a[0] && b[3] === a[3]).map((b) => [a, b, a[3]]));
        expect(sorted(seen.flatMap((s) => s.joined))).toEqual(sorted(joined));
      }),
      { numRuns: 6 },
    );
  });

  const misuse = async (how: string, extra: object = {}): Promise<void> => {
    const guards = await initialize<number>(Config.process(2), { module: fixtures, export: 'misuse', args: { how, ...extra } });
    await guards.join();
  };

  it('a worker that builds the dataflow but returns without running it fails the run on the others, naming it, rather than leaving them waiting', { timeout: 120_000 }, async () => {
    const same = /worker 0 failed: DataflowError: .*worker 1 closed the channel without ending its part; every worker must run the same dataflow/;
    await expect(misuse('returns')).rejects.toThrow(new RegExp(`exchange \\(channel 1000000\\)`));
    await expect(misuse('returns')).rejects.toThrow(same);
    await expect(misuse('returnsFromLoop')).rejects.toThrow(/iterate \(channel \d+\): worker 1 closed the channel/);
    const dir = mkdtempSync(join(tmpdir(), 'weft-df-'));
    try {
      const path = join(dir, 'lines.txt');
      writeFileSync(path, 'a\nb\nc\n'.repeat(1000));
      await expect(misuse('returnsFromFile', { path })).rejects.toThrow(/readFile \(channel \d+\): worker 1 closed the channel/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a loop body whose feedback or result is a stream from outside the loop is refused, naming which', { timeout: 120_000 }, async () => {
    await expect(misuse('feedback')).rejects.toThrow(/iterate: the body's feedback is a stream made inside the loop .*got a stream from outside it/);
    await expect(misuse('result')).rejects.toThrow(/iterate: the body's result is a stream made inside the loop/);
  });

  it('a key with no JSON form (a function, an object holding a bigint) is refused, naming what it is', { timeout: 120_000 }, async () => {
    await expect(misuse('functionKey')).rejects.toThrow(/DataflowError: a key must have a JSON form when it is an array or object; got a function/);
    await expect(misuse('bigintKey')).rejects.toThrow(/DataflowError: a key must have a JSON form when it is an array or object \(.*BigInt.*\); got Object/);
  });

  it('a source that is async, a readFile of a directory and an epoch that is a string are refused, naming them', { timeout: 120_000 }, async () => {
    await expect(misuse('asyncSource')).rejects.toThrow(/DataflowError: fromIterable takes a \(synchronous\) iterable, got an async iterable/);
    await expect(misuse('directory', { path: tmpdir() })).rejects.toThrow(new RegExp(`DataflowError: readFile: ${tmpdir()} is not a file`));
    await expect(misuse('stringEpoch')).rejects.toThrow(/source epochs are integers that never decrease: "1" \(a string\) after 0/);
  });

  it('a source epoch that jumps (a clock reading) and an epoch too large for a loop are refused, naming the epochs', { timeout: 120_000 }, async () => {
    await expect(misuse('epochJump')).rejects.toThrow(/source epochs advance at most 65536 at a time .*: \d{13} after 1/);
    await expect(misuse('loopEpoch')).rejects.toThrow(/iterate: epochs entering a loop are at most \d+ .*got 1099511627776/);
  });
});

describe('collectives', () => {
  it('allReduce sums and maxes across workers round after round, with barriers between', { timeout: 120_000 }, async () => {
    const guards = await initialize<number[][]>(Config.process(3), { module: fixtures, export: 'reduceRounds' });
    const got = await guards.join();
    const expected: number[][] = [];
    for (let round = 0; round < 20; round++) {
      expected.push([3 * round + 3, -3]);
      expected.push([2 * round]);
    }
    for (const g of got) expect(g).toEqual(expected);
  });
});
