// Inputs that are large against the channels' frame bound (maxMessageBytes,
// 1 MiB here): many of them, each under the bound, go out in frames within
// it, whether their size shows before encoding (binary) or only after (an
// object holding bytes); one over the bound on its own fails its task with
// an InputError, and the runtime goes on. Before, the batch of them was one
// frame over the bound, refused by the channel from inside the dispatcher:
// the runtime stopped, and every directive with it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OperationError, Runtime } from '../../src/runtime/index.ts';
import { Increment, InputBytes } from './fixtures/operations.ts';

const operations = new URL('./fixtures/operations.ts', import.meta.url);
const KiB = 1 << 10;
const MiB = 1 << 20;

const input = (bytes: number, i: number): Uint8Array => new Uint8Array(bytes).fill(i + 1, 0, 1).fill(i + 2, bytes - 1);

describe('inputs large against maxMessageBytes', () => {
  let runtime: Runtime;
  beforeAll(async () => {
    runtime = await Runtime.inMemory({ workers: 2, operations, maxMessageBytes: MiB });
  });
  afterAll(async () => {
    await runtime?.close();
  });

  it('binary inputs each under the bound, 3 MiB of them at once, all arrive whole', async () => {
    const inputs = Array.from({ length: 8 }, (_, i) => input(400 * KiB, i));
    expect(await runtime.fanout(InputBytes, inputs)).toEqual(inputs.map((_, i) => [400 * KiB, i + 1, i + 2]));
    const nearBound = Array.from({ length: 4 }, (_, i) => input(MiB - 2 * KiB, i));
    expect(await runtime.fanout(InputBytes, nearBound)).toEqual(nearBound.map((_, i) => [MiB - 2 * KiB, i + 1, i + 2]));
  });

  it('objects holding bytes, whose size shows only once encoded, all arrive whole', async () => {
    const inputs = Array.from({ length: 8 }, (_, i) => ({ data: input(400 * KiB, i) }));
    expect(await runtime.fanout(InputBytes, inputs)).toEqual(inputs.map((_, i) => [400 * KiB, i + 1, i + 2]));
  });

  it('one input over the bound fails its directive with an InputError naming its index; the runtime goes on', async () => {
    for (const big of [input(2 * MiB, 0), { data: input(2 * MiB, 0) }]) {
      const inputs = Array.from({ length: 8 }, (_, i) => (i === 5 ? big : input(10, i)));
      const error = (await runtime.fanout(InputBytes, inputs).catch((e: unknown) => e)) as OperationError;
      expect(error).toBeInstanceOf(OperationError);
      expect(error.index).toBe(5);
      expect(error.cause).toBeInstanceOf(Error);
      expect((error.cause as Error).name).toBe('InputError');
      expect((error.cause as Error).message).toMatch(/the input is over the channels' bound on one frame \(maxMessageBytes 1048576\) once encoded: .*a batch of \d+ bytes exceeds maxMessageBytes/);
      expect(await runtime.fanout(Increment, [1, 2, 3])).toEqual([2, 3, 4]);
    }
  });
});
