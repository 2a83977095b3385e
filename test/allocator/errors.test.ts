// Bad input: each mistake gets its own error class and a message that says
// what is wrong.

import { describe, expect, it } from 'vitest';
import { ChannelError, Config, ConfigError, ModuleError, initialize } from '../../src/index.ts';

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
    expect(config.kind).toBe('process');
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

  it('a value msgpack cannot encode is an error naming the channel, and the rest of the batch still arrives', async () => {
    const guards = await initialize<{ error?: { name: string; message: string }; got?: unknown[] }>(Config.process(2), { module: workers, export: 'unencodable' });
    const [sender, receiver] = await guards.join();
    expect(sender!.error?.name).toBe('ChannelError');
    expect(sender!.error?.message).toMatch(/^channel 21: .*symbol/i);
    expect(receiver!.got).toEqual([1, 2]);
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

  it('ChannelError is the error class of channel misuse', () => {
    const e = new ChannelError(4, 'example');
    expect(e.message).toBe('channel 4: example');
    expect(e.channel).toBe(4);
  });
});
