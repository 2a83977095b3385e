// `weft/channels`: the channels alone (initialize, Config, codecs and
// their errors), without the task runtime. A program, or a worker thread
// re-running it, that imports only this loads less at start-up; `weft`
// exports all of it too.
/// <reference types="node" preserve="true" />
export {
  Config,
  initialize,
  codecs,
  collectives,
  type Collectives,
  type ReduceOp,
  type WorkerGuards,
  type Allocator,
  type TypedArray,
  type TypedArrayConstructor,
  type TypedArrayOptions,
  type Options,
  type ClusterOptions,
  type ModuleSpec,
  type AllocatorStats,
  type ChannelStats,
  type LinkStats,
  type PeerLoss,
  type PeerJoin,
  type Push,
  type Loan,
  type Pull,
  type Codec,
  type Batcher,
  type WorkerFn,
} from './allocator/index.ts';
export {
  WeftError,
  ConfigError,
  ChannelError,
  CodecError,
  ProtocolError,
  ModuleError,
  FailStopError,
  WorkerError,
  OverflowError,
  AllocatorClosedError,
  PeerError,
  ConnectError,
  HandshakeError,
} from './errors.ts';
export type { TlsFiles } from './transport/tls.ts';
