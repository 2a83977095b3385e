// One error class per failure, each with a stable `name` and an optional
// `cause`, so callers can tell them apart without parsing messages. This is
// the errors file of the allocator and transport layers (the runtime's are
// in runtime/core/errors.ts, built on WeftError); it imports nothing.

export class WeftError extends Error {
  override name = 'WeftError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A `Config` that cannot run: bad thread count, bad flags, unsupported mode. */
export class ConfigError extends WeftError {
  override name = 'ConfigError';
}

/** Misuse of a channel: bad id, double allocation, wrong codec, send after close. */
export class ChannelError extends WeftError {
  override name = 'ChannelError';
  constructor(readonly channel: number, message: string, options?: { cause?: unknown }) {
    super(`channel ${channel}: ${message}`, options);
  }
}

/** A value the channel's codec cannot encode or decode. */
export class CodecError extends WeftError {
  override name = 'CodecError';
}

/** Bytes that are not our protocol: a bad frame header, a bad handshake. */
export class ProtocolError extends WeftError {
  override name = 'ProtocolError';
}

/** Raised on our side when a cluster handshake failed. `refused`: an answer that retrying cannot change, unlike a blip. */
export class HandshakeError extends ProtocolError {
  override name = 'HandshakeError';
  constructor(message: string, readonly refused: boolean, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Could not build the cluster's mesh: a peer unreachable, or refused us. */
export class ConnectError extends WeftError {
  override name = 'ConnectError';
}

/** A peer process failed or broke the protocol; `process` is -1 when no single process is to blame. */
export class PeerError extends WeftError {
  override name = 'PeerError';
  constructor(readonly process: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The module form named a module or export that cannot be used. */
export class ModuleError extends WeftError {
  override name = 'ModuleError';
}

/**
 * Raised inside a worker when the run is stopped under it: another worker
 * (or a peer process) failed, and fail-stop releases every blocked wait with
 * this error, naming the worker that failed first (`failedWorker`, -1 for a
 * peer process or `guards.close()`). Not to be confused with the runtime's
 * AbortError, a directive cancelled by its caller's signal.
 */
export class FailStopError extends WeftError {
  override name = 'FailStopError';
  constructor(readonly failedWorker: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** `join()` rejects with this: it names the worker and carries its error as `cause`. */
export class WorkerError extends WeftError {
  override name = 'WorkerError';
  constructor(readonly worker: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * A worker's backlog (frames waiting on its side for ring space) would pass
 * `maxBacklogBytes`: its receivers read slower than it sends and it did not
 * wait when `send()` returned false. Fail-stop: the worker fails with this.
 */
export class OverflowError extends WeftError {
  override name = 'OverflowError';
  constructor(readonly channel: number, readonly target: number, message: string, options?: { cause?: unknown }) {
    super(`channel ${channel}: ${message}`, options);
  }
}

/** An allocator used after its worker's function returned. */
export class AllocatorClosedError extends WeftError {
  override name = 'AllocatorClosedError';
}
