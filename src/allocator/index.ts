// The allocator layer's public surface.
export { Config, type Options, type ClusterOptions } from './config.ts';
export { initialize, type ModuleSpec } from './initialize.ts';
export type { WorkerGuards } from './guards.ts';
export type { Allocator, AllocatorStats, PeerLoss, PeerJoin } from './allocator.ts';
export type { ChannelStats } from './counters.ts';
export type { LinkStats } from '../transport/index.ts';
export type { Push } from './push.ts';
export type { Loan } from './loan.ts';
export type { Pull } from './pull.ts';
export { Detached } from './codec-msgpack.ts';
export { codecs, type Codec, type Batcher, type TypedArray, type TypedArrayConstructor, type TypedArrayOptions } from './codec.ts';
export type { WorkerFn } from './worker.ts';
export { collectives, type Collectives, type ReduceOp } from './collectives.ts';
export { moduleUrl } from './module-url.ts';
// The lower layers' errors a program above meets (a send to a lost peer's worker).
export { PeerError } from '../errors.ts';
