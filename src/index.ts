// weft's public API: everything a user imports is listed here.
export {
  Config,
  initialize,
  WorkerGuards,
  Allocator,
  codecs,
  type Options,
  type ClusterOptions,
  type ModuleSpec,
  type AllocatorStats,
  type Push,
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
  AbortedError,
  WorkerError,
} from './errors.ts';
export { PeerError } from './transport/router.ts';
export { ConnectError } from './transport/mesh.ts';
export { HandshakeError } from './transport/handshake.ts';
