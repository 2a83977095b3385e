// Large messages between threads through the sender's slab (docs/ring.md,
// "Slabs"): byte-exact owned and borrowed, loans filled in place, and the
// bound attacked: a receiver that holds a borrowed chunk, loans never sent,
// a flood that ignores backpressure, options given wrong values.

import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../src/allocator/config.ts';
import { Config, ConfigError, initialize, OverflowError, WorkerError } from '../../src/index.ts';
import { MiB, ODD_SIZES, ODD_SLAB, SLAB } from './fixtures/slab.ts';

const workers = new URL('./fixtures/slab.ts', import.meta.url);

describe('large messages between threads', () => {
  it('arrive byte for byte, owned or borrowed, at 64 KiB, 1 MiB and 16 MiB, while the 64 KiB rings carry only descriptors', async () => {
    const guards = await initialize<{ ringBytesSent: number; ok: boolean[]; borrowedShared: boolean; ownedShared: boolean }>(Config.process(2, { ringBytes: 1 << 16 }), { module: workers, export: 'ownedAndBorrowed' });
    const [sender, receiver] = await guards.join();
    expect(receiver!.ok).toEqual([true, true, true, true, true, true]);
    // Six messages, 34 MiB: the ring saw six 16-byte descriptors and the CLOSE-free rest.
    expect(sender!.ringBytesSent).toBe(6 * 16);
    expect(receiver!.borrowedShared).toBe(true);
    expect(receiver!.ownedShared).toBe(false);
  });

  it('inside msgpack messages ({ id, pixels }): large binary fields arrive whole, as the same kind, and the ring carries only descriptors', async () => {
    const guards = await initialize<{ ringBytesSent: number; ok: boolean[] }>(Config.process(2, { ringBytes: 1 << 16 }), { module: workers, export: 'binaryFields' });
    const [sender, receiver] = await guards.join();
    expect(receiver!.ok).toEqual([true, true, true]);
    expect(sender!.ringBytesSent).toBe(3 * 16);
  });

  it('through the rings instead with slabBytes: 0', async () => {
    const guards = await initialize<{ ringBytesSent: number; ok: boolean[] }>(Config.process(2, { ringBytes: 1 << 16, slabBytes: 0 }), { module: workers, export: 'ownedAndBorrowed' });
    const [sender, receiver] = await guards.join();
    expect(receiver!.ok.every(Boolean)).toBe(true);
    expect(sender!.ringBytesSent).toBe(2 * (16 * MiB + MiB + (64 << 10)));
  });

  it('with a slabBytes that is not a multiple of 4 KiB: a batch too long for the slab\'s whole pages goes through the rings, sent or loaned, instead of waiting for a chunk forever', async () => {
    const guards = await initialize<{ ringBytesSent: number; ok: boolean[] }>(Config.process(2, { slabBytes: ODD_SLAB }), { module: workers, export: 'oddSlab' });
    const [sender, receiver] = await guards.join();
    expect(receiver!.ok).toEqual(new Array(2 * ODD_SIZES.length).fill(true));
    // The two that fit in whole pages (64 KiB, 24 pages) went as descriptors, the others as themselves, sent and loaned.
    expect(sender!.ringBytesSent).toBe(2 * (16 + 16 + ODD_SIZES[2]! + ODD_SIZES[3]!));
  });

  it('can be loaned: filled in place, borrowed by the receiver; a spent loan and bad lengths are refused by name', async () => {
    const guards = await initialize<{ got: boolean[]; errors: string[] }>(Config.process(2), { module: workers, export: 'loans' });
    const [sender, receiver] = await guards.join();
    expect(receiver!.got).toEqual([true, true, true]);
    const e = sender!.errors;
    expect(e.slice(0, 3)).toEqual([
      expect.stringMatching(/^ChannelError: .*a loan's bytes were read after it was sent/),
      expect.stringMatching(/^ChannelError: .*a loan was sent after it was sent/),
      expect.stringMatching(/^ChannelError: .*a loan was cancelled after it was sent/),
    ]);
    for (const [i, bad] of ['-8', '12', '1.5', 'NaN', String(2 ** 40), '8'].entries()) {
      expect(e[3 + i]).toMatch(new RegExp(`^ChannelError: .*loan\\(\\) takes a byte length from 0 to \\d+ that is a multiple of 8 \\(the element size\\), got ${bad.replace('.', '\\.')}$`));
    }
    expect(e[9]).toMatch(/^ChannelError: .*loan\(\) needs a typed-array channel/);
    expect(e[10]).toMatch(/^ChannelError: .*read after it was cancelled/);
  });
});

describe('the slab bound', () => {
  it('a receiver that holds a borrowed chunk and reads nothing more: the sender gets send() false, its backlog stays bounded, and the held view stays intact', async () => {
    const guards = await initialize<{ sent: number; backlog: number; heldIntact: boolean; received: number }>(Config.process(2, { slabBytes: SLAB }), { module: workers, export: 'heldBorrow' });
    const [sender, receiver] = await guards.join();
    // Chunks past a ring's worth (1 MiB) in the slab count as backlog, and
    // send() says to wait once that passes highWaterBytes (1 MiB): at the
    // third message, long before the slab (SLAB) is full.
    expect(sender!.sent).toBe(3);
    expect(sender!.backlog).toBeGreaterThan(MiB);
    expect(sender!.backlog).toBeLessThanOrEqual(2 * MiB + 64);
    expect(receiver!.heldIntact).toBe(true);
    expect(receiver!.received).toBe(sender!.sent);
  });

  it('on default options (a 256 MiB slab), a flood of 1 MiB messages at a receiver that holds one is told to wait at ringBytes + highWaterBytes, not a slab ahead', async () => {
    const guards = await initialize<{ sent: number; backlog: number; heldIntact: boolean; received: number }>(Config.process(2), { module: workers, export: 'heldBorrow' });
    const [sender, receiver] = await guards.join();
    expect(sender!.sent).toBe(3);
    expect(sender!.backlog).toBeGreaterThan(MiB);
    expect(sender!.backlog).toBeLessThanOrEqual(2 * MiB);
    expect(receiver!.heldIntact).toBe(true);
    // ready() resolved once the receiver read on, and everything arrived.
    expect(receiver!.received).toBe(3);
  });

  it('a flood of 16 MiB messages at a receiver that holds one is told to wait at the second: the first in flight counts for a ring\'s worth at most, the others whole', async () => {
    const guards = await initialize<{ sent: number; backlog: number; heldIntact: boolean; received: number }>(Config.process(2), { module: workers, export: 'heldBorrow16' });
    const [sender, receiver] = await guards.join();
    // The first message is within the window: the sender fills the next
    // while the receiver copies it. That one counts whole, past highWaterBytes.
    expect(sender!.sent).toBe(2);
    expect(sender!.backlog).toBe(16 * MiB);
    expect(receiver!.heldIntact).toBe(true);
    expect(receiver!.received).toBe(2);
  });

  it('on default options (a 256 MiB slab), a receiver that holds a 60 MiB message holds two at most before send() says to wait, not three', async () => {
    const guards = await initialize<{ sent: number; backlog: number; heldIntact: boolean; received: number }>(Config.process(2), { module: workers, export: 'heldBorrow60' });
    const [sender, receiver] = await guards.join();
    expect(sender!.sent).toBe(2);
    expect(sender!.backlog).toBe(60 * MiB);
    expect(receiver!.heldIntact).toBe(true);
    expect(receiver!.received).toBe(2);
  });

  it('a sender that loans and never sends: loans stop at the bound, a cancelled one comes back, and the run ends', async () => {
    const guards = await initialize<{ loans: number; afterCancel: boolean; delivered: number }>(Config.process(2, { slabBytes: SLAB }), { module: workers, export: 'loanNeverSent' });
    const [sender, receiver] = await guards.join();
    expect(sender!.loans).toBe(SLAB / MiB);
    expect(sender!.afterCancel).toBe(true);
    expect(receiver!.delivered).toBe(0);
  });

  it('a loan cancelled by one task of a worker wakes another of its tasks parked in awaitLoan() for the room', async () => {
    const guards = await initialize<number[]>(Config.process(2, { slabBytes: SLAB }), { module: workers, export: 'cancelWakesLoanWaiter' });
    expect(await guards.join()).toEqual([[], [MiB]]);
  });

  it('a flood that ignores send()\'s answer fails its sender with an OverflowError at maxBacklogBytes, not out of memory', async () => {
    const guards = await initialize<number>(Config.process(2, { slabBytes: SLAB, maxBacklogBytes: 8 * MiB }), { module: workers, export: 'floodIgnoringBackpressure' });
    const error = await guards.join().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerError);
    expect((error as WorkerError).cause).toMatchObject({ name: OverflowError.name });
    expect((error as WorkerError).message).toMatch(/backlog would pass maxBacklogBytes \(8388608\)/);
  });

  it('slabBytes given a wrong value is a ConfigError naming it', () => {
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 32, '1' as unknown as number]) {
      expect(() => Config.process(2, { slabBytes: bad })).toThrow(ConfigError);
      expect(() => Config.process(2, { slabBytes: bad })).toThrow(/slabBytes must be an integer from 0 to \d+, got /);
    }
    expect(checkConfig(Config.process(2, { slabBytes: 0 })).options.slabBytes).toBe(0);
  });
});
