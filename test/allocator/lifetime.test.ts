// How a run ends and where its failures surface: one documented place per
// kind (docs/semantics.md, "Errors"), whatever the timing; `await using`
// stops workers that would keep the process alive; return values follow the
// channels' value model.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { FailStopError, Config, ModuleError, WorkerError, initialize, type WorkerGuards } from '../../src/index.ts';

const lifetime = new URL('./fixtures/lifetime.ts', import.meta.url);

// The fixture's workers read what to return from WEFT_RETURN (a worker
// thread copies process.env as it starts); each test puts it back as it
// found it, so no later test or file sees this one's choice.
afterEach(() => {
  vi.unstubAllEnvs();
});

describe('a run', () => {
  it('await using stops workers that wait forever, and join() says they were stopped', async () => {
    let kept: WorkerGuards<never> | undefined;
    {
      await using guards = await initialize<never>(Config.process(2), { module: lifetime, export: 'waitsForever' });
      kept = guards;
    }
    const e = await kept.join().catch((error: unknown) => error);
    expect(e).toBeInstanceOf(FailStopError);
    expect((e as Error).message).toBe('the workers were stopped by close()');
  });

  it('close() after every worker returned changes nothing', async () => {
    vi.stubEnv('WEFT_RETURN', 'null');
    const guards = await initialize(Config.process(2), { module: lifetime, export: 'returns' });
    expect(await guards.join()).toEqual([null, 1]);
    await guards.close();
    expect(await guards.join()).toEqual([null, 1]);
  });

  it("a worker's failure after it started rejects join(), never initialize(), in every run", async () => {
    for (let run = 0; run < 6; run++) {
      const guards = await initialize(Config.process(2), { module: lifetime, export: 'failsAtOnce' });
      const e = await guards.join().catch((error: unknown) => error);
      expect(e).toBeInstanceOf(WorkerError);
      expect((e as WorkerError).worker).toBe(1);
      expect((e as Error).message).toBe('worker 1 failed: Error: failed at once');
    }
  });

  it('a worker that cannot start rejects initialize() with a ModuleError', async () => {
    const e = await initialize(Config.process(2), { module: lifetime, export: 'missing' }).catch((error: unknown) => error);
    expect(e).toBeInstanceOf(ModuleError);
  });

  it('return values arrive as channel messages do; one the codec refuses fails the worker with a CodecError', async () => {
    vi.stubEnv('WEFT_RETURN', 'model');
    const [value] = await (await initialize(Config.process(2), { module: lifetime, export: 'returns' })).join();
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    const v = value as { p: object; s: Set<number>; f: Float64Array; z: number };
    expect(Object.getPrototypeOf(v.p)).toBe(Object.prototype);
    expect(v.p).toEqual({ x: 1 });
    expect(v.s).toEqual(new Set([1]));
    expect(v.f).toEqual(new Float64Array([0.5]));
    expect(Object.is(v.z, 0)).toBe(true);
    vi.stubEnv('WEFT_RETURN', 'function');
    const e = await (await initialize(Config.process(2), { module: lifetime, export: 'returns' })).join().catch((error: unknown) => error);
    expect(e).toBeInstanceOf(WorkerError);
    expect(((e as Error).cause as Error).name).toBe('CodecError');
    expect((e as Error).message).toMatch(/^worker 0 failed: CodecError: worker 0 returned a value that cannot be sent: msgpack cannot carry a function/);
  });
});
