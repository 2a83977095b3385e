// Bad input: each mistake gets its own error class and a message that says
// what is wrong.

import { describe, expect, it } from 'vitest';
import { ChannelError, CodecError, Config, ConfigError, ModuleError, codecs, initialize } from '../../src/index.ts';
import { AFTER_RETURN } from './fixtures/workers.ts';

const workers = new URL('./fixtures/workers.ts', import.meta.url);

describe('bad input', () => {
  it('a thread count that is not a positive integer is a ConfigError', () => {
    expect(() => Config.process(0)).toThrow(ConfigError);
    expect(() => Config.process(0)).toThrow(/threads must be a positive integer, got 0/);
    expect(() => Config.process(1.5)).toThrow(/threads must be a positive integer, got 1.5/);
  });

  it('ringBytes that is not a power of two in range is a ConfigError', () => {
    expect(() => Config.process(2, { ringBytes: 5000 })).toThrow(ConfigError);
    expect(() => Config.process(2, { ringBytes: 5000 })).toThrow(/ringBytes must be a power of two/);
    expect(() => Config.process(2, { ringBytes: 1024 })).toThrow(/ringBytes/);
  });

  it('Config.fromArgs reads timely flags and returns the rest', () => {
    const { config, rest } = Config.fromArgs(['-w', '3', '--foo']);
    expect(config.threads).toBe(3);
    expect(config.processes).toBe(1);
    expect(config.process).toBe(0);
    expect(rest).toEqual(['--foo']);
    expect(Config.fromArgs(['--threads=2', 'input.txt']).config.threads).toBe(2);
  });

  it('Config.fromArgs refuses a flag value that is not a number', () => {
    expect(() => Config.fromArgs(['-w', 'x'])).toThrow(ConfigError);
    expect(() => Config.fromArgs(['-w', 'x'])).toThrow(/-w.*"x"/);
    expect(() => Config.fromArgs(['-w'])).toThrow(/-w needs a value/);
  });

  it('bad channel ids and allocating a channel twice are ChannelErrors naming the channel', async () => {
    const guards = await initialize<{ name: string; message: string; channel: number }[]>(Config.thread(), { module: workers, export: 'badChannels' });
    const [[negative, fractional, twice]] = (await guards.join()) as [[{ name: string; message: string; channel: number }, { name: string; message: string; channel: number }, { name: string; message: string; channel: number }]];
    expect(negative).toMatchObject({ name: 'ChannelError', channel: -1 });
    expect(negative.message).toMatch(/^channel -1: channel ids are integers/);
    expect(fractional).toMatchObject({ name: 'ChannelError', channel: 1.5 });
    expect(fractional.message).toMatch(/^channel 1.5:/);
    expect(twice).toMatchObject({ name: 'ChannelError', channel: 20 });
    expect(twice.message).toMatch(/^channel 20: already allocated/);
  });

  it('a codec that is not one (codecs.msgpack not called, a name, a bare object, an id past a byte) is a ChannelError at allocate naming the channel, and leaves the channel free', async () => {
    const guards = await initialize<{ name: string; message: string; channel: number }[]>(Config.thread(), { module: workers, export: 'badCodecs' });
    const [[uncalled, named, bare, wide, sent]] = (await guards.join()) as [{ name: string; message: string; channel: number }[]];
    expect(uncalled).toMatchObject({ name: 'ChannelError', channel: 30, message: 'channel 30: the codec is the function msgpack, not a codec: call it (codecs.msgpack(), codecs.typedArray(Float64Array))' });
    expect(named).toMatchObject({ name: 'ChannelError', channel: 31 });
    expect(named!.message).toMatch(/^channel 31: the codec must be a codec \(codecs\.msgpack\(\), .*\), got "msgpack"$/);
    expect(bare!.message).toMatch(/^channel 32: the codec must be .*, got an object without a u8 id, a name, batcher\(\), decode\(\)$/);
    expect(wide!.message).toMatch(/^channel 33: .*, got an object without a u8 id$/);
    expect(sent).toEqual({ name: 'sent', message: '7', channel: 30 });
  });

  it('codecs.typedArray given what is not a typed array constructor is a CodecError naming what it got', () => {
    expect(() => codecs.typedArray(Array as never)).toThrow(new CodecError('codecs.typedArray needs a typed array constructor (Float64Array, Uint8Array, ...), got Array'));
    expect(() => codecs.typedArray(8 as never)).toThrow(/, got 8$/);
  });

  it('a value msgpack cannot carry is refused at its send() call, naming the channel, and the others arrive', async () => {
    const guards = await initialize<{ refused?: ({ name: string; message: string; cause?: string } | undefined)[]; got?: unknown[] }>(Config.process(2), { module: workers, export: 'unencodable' });
    const [sender, receiver] = await guards.join();
    const [fn, symbol, weak, circular] = sender!.refused!;
    for (const r of sender!.refused!) expect(r).toMatchObject({ name: 'ChannelError', cause: 'CodecError' });
    expect(fn!.message).toMatch(/^channel 21: send to worker 1 refused the message: .*function \(named\)/);
    expect(symbol!.message).toMatch(/^channel 21: .*symbol \(Symbol\(not encodable\)\)/);
    expect(weak!.message).toMatch(/^channel 21: .*cannot carry a WeakMap/);
    expect(circular!.message).toMatch(/^channel 21: .*circular/);
    expect(receiver!.got).toEqual([1, 2]);
  });

  it('close() closes even when it throws: a later send throws and the receiver sees the end', async () => {
    const guards = await initialize<unknown>(Config.process(2, { maxMessageBytes: 64 }), { module: workers, export: 'closeThrows' });
    const [sender, received] = (await guards.join()) as [({ name: string; message: string } | undefined)[], number];
    expect(sender[0]).toMatchObject({ name: 'ChannelError' });
    expect(sender[0]!.message).toMatch(/^channel 23: a batch of \d+ bytes exceeds maxMessageBytes \(64\)/);
    expect(sender[1]).toMatchObject({ name: 'ChannelError', message: 'channel 23: send to worker 1 after close()' });
    expect(sender[2]).toBeUndefined();
    expect(received).toBe(0);
  });

  it('an allocator used after its worker returned throws AllocatorClosedError (or ChannelError for a send)', async () => {
    const report = new BroadcastChannel(AFTER_RETURN);
    const got = new Promise<({ name: string; message: string } | undefined)[]>((resolve) => {
      report.onmessage = (e) => resolve((e as MessageEvent).data as ({ name: string; message: string } | undefined)[]);
    });
    try {
      const guards = await initialize<number>(Config.process(2), { module: workers, export: 'usedAfterReturn' });
      expect(await guards.join()).toEqual([0, 1]);
      const [send, allocate, receive] = await got;
      expect(send).toMatchObject({ name: 'ChannelError', message: 'channel 24: send to worker 1 after worker 0 returned (its allocator is closed)' });
      expect(allocate).toMatchObject({ name: 'AllocatorClosedError' });
      expect(allocate!.message).toMatch(/^worker 0 called allocate\(25\) after its function returned/);
      expect(receive!.message).toMatch(/^worker 0 called receive\(\) after its function returned/);
    } finally {
      report.close();
    }
  });

  it('threads per process are bounded, and so are the rings together, with a ConfigError', () => {
    expect(() => Config.process(2 ** 31)).toThrow(ConfigError);
    expect(() => Config.process(2 ** 31)).toThrow(/threads is at most 64 per process .* got 2147483648/);
    expect(() => Config.process(65)).toThrow(/at most 64/);
    expect(() => Config.fromArgs(['-w', '100'])).toThrow(/--threads is at most 64/);
    expect(Config.process(64).threads).toBe(64);
    expect(() => Config.process(64, { ringBytes: 2 << 20 })).toThrow(/64 threads with ringBytes 2097152 need .* bytes of rings in one process/);
    expect(() => Config.cluster({ threads: 100, process: 0, addresses: ['127.0.0.1:1'] })).toThrow(/at most 64/);
  });

  it('a hand-made or copied config is refused with a ConfigError that says how to make one, not a TypeError', async () => {
    const bad = (c: unknown) => initialize(c as ReturnType<typeof Config.thread>, { module: workers, export: 'hello' });
    await expect(bad(null)).rejects.toThrow(ConfigError);
    await expect(bad(null)).rejects.toThrow(/^initialize needs a Config \(Config\.thread\(\), Config\.process\(n\), .*\), got null$/);
    await expect(bad({ kind: 'process', options: {} })).rejects.toThrow(/^initialize needs a Config .*, got an object Config\.\* did not make: a hand-made object or a copy \(\{ \.\.\.config \}\) is not a config$/);
    // A copy keeps none of what the config holds; an option spread into it is named.
    await expect(bad({ ...Config.process(2) })).rejects.toThrow(/got an object Config\.\* did not make/);
    await expect(bad({ ...Config.process(2), ringBytes: 1 << 16 })).rejects.toThrow(/is not a config; "ringBytes" is an option: give it to Config\.thread\/process\/cluster$/);
    await expect(bad(Object.create(Config.prototype) as unknown)).rejects.toThrow(/got an object Config\.\* did not make/);
    // A config cannot be changed after it was made.
    const config = Config.process(2);
    expect(() => Object.assign(config, { threads: 3 })).toThrow(TypeError);
    expect(config.threads).toBe(2);
  });

  it('Config.fromArgs applies the program\'s options over the flags, and refuses one it does not know', () => {
    const { config } = Config.fromArgs(['-w', '2'], { ringBytes: 1 << 16, onPeerLoss: 'continue' });
    expect(config.threads).toBe(2);
    expect(() => Config.fromArgs(['-w', '2'], { ringBytes: 5000 })).toThrow(/ringBytes must be a power of two/);
    expect(() => Config.fromArgs([], { threads: 2 } as never)).toThrow(/^Config\.fromArgs's options has no field "threads": it is a cluster option/);
  });

  it('the module form with a missing export rejects initialize with a ModuleError', async () => {
    const missing = initialize(Config.process(2), { module: workers, export: 'noSuchExport' });
    await expect(missing).rejects.toThrow(ModuleError);
    await expect(missing).rejects.toThrow(/noSuchExport/);
    const notFunction = initialize(Config.process(2), { module: workers, export: 'notAFunction' });
    await expect(notFunction).rejects.toThrow(ModuleError);
    await expect(notFunction).rejects.toThrow(/notAFunction.*number/);
  });

  it('the module form with a module that does not exist rejects with a ModuleError', async () => {
    await expect(initialize(Config.process(1), { module: new URL('./fixtures/missing.ts', import.meta.url) })).rejects.toThrow(ModuleError);
  });

  it('codecs.typedArray refuses a misspelt option or a borrow that is not a boolean with a CodecError naming it, rather than copying without a word', () => {
    const typedArray = codecs.typedArray as (ctor: unknown, options?: unknown) => unknown;
    const refusals: [unknown, unknown, RegExp][] = [
      [Uint8Array, { borow: true }, /^codecs\.typedArray's options have no field "borow"; its one field is borrow$/],
      [Uint8Array, { borrow: 'yes' }, /^codecs\.typedArray's borrow must be true or false, got "yes"$/],
      [Uint8Array, { borrow: 1 }, /^codecs\.typedArray's borrow must be true or false, got 1$/],
      [Uint8Array, null, /^codecs\.typedArray's options must be an object, got null$/],
      [Uint8Array, true, /^codecs\.typedArray's options must be an object, got true$/],
    ];
    for (const [ctor, options, message] of refusals) {
      expect(() => typedArray(ctor, options)).toThrow(CodecError);
      expect(() => typedArray(ctor, options)).toThrow(message);
    }
    expect(codecs.typedArray(Uint8Array, { borrow: true }).lends).toBe(true);
    expect(codecs.typedArray(Uint8Array, { borrow: false }).lends).toBe(false);
    expect(codecs.typedArray(Uint8Array, { borrow: undefined }).lends).toBe(false);
    expect(codecs.typedArray(Uint8Array).lends).toBe(false);
  });

  it('a wait\'s timeout that is NaN or not a number, and a spinLimit that is not a whole number of checks, are ConfigErrors naming them, not a wait for ever', async () => {
    const guards = await initialize<string[]>(Config.thread(), { module: new URL('./fixtures/waits.ts', import.meta.url), export: 'badWaits' });
    const [out] = await guards.join();
    const wait = (call: string, got: string) => `ConfigError: ${call}'s timeoutMs must be a number of milliseconds (Infinity or none: no limit), got ${got}`;
    const spin = (got: string) => `ConfigError: spinLimit must be undefined (adaptive) or a whole number of checks from 0 to ${Number.MAX_SAFE_INTEGER}, got ${got}`;
    expect(out).toEqual([
      wait('awaitEvents()', 'NaN'), wait('awaitEvents()', '"5"'), wait('awaitEventsAsync()', 'NaN'), wait('awaitDrain()', 'NaN'),
      spin('Infinity'), spin('-1'), spin('1.5'), spin('NaN'), spin('"x"'),
      'ok', 'ok', 'ok', 'ok',
    ]);
  });

  it('sendAll() given what is not iterable, and a typed array whose buffer was transferred away, are ChannelErrors naming the channel, not TypeErrors; the channel goes on', async () => {
    const guards = await initialize<string[]>(Config.process(2), { module: new URL('./fixtures/mistakes.ts', import.meta.url), export: 'carelessSends' });
    const [sender, receiver] = await guards.join();
    const detached = (target: number) => `ChannelError: channel 1: send to worker ${target} refused the message: the Uint8Array views a detached ArrayBuffer (transferred away): it has no bytes to send`;
    expect(sender).toEqual([
      'ChannelError: channel 0: sendAll() takes an iterable or an async iterable, got null',
      'ChannelError: channel 0: sendAll() takes an iterable or an async iterable, got number',
      detached(0),
      detached(1),
    ]);
    expect(receiver).toEqual(['3']);
  });

  it('ChannelError is the error class of channel misuse', () => {
    const e = new ChannelError(4, 'example');
    expect(e.message).toBe('channel 4: example');
    expect(e.channel).toBe(4);
  });
});
