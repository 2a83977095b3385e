// Failures particular to the AMQP backend, one class per failure.

import { WeftError } from '../../../errors.ts';
import { RuntimeClosedError } from '../../core/errors.ts';

/**
 * The broker could not be reached (first connection) or did not come back
 * within `reconnectTimeoutMs` after the connection was lost. Every directive
 * that was running rejects with this. A `RuntimeClosedError`, so code that
 * handles a closed runtime handles this too.
 */
export class BrokerUnavailableError extends RuntimeClosedError {
  override name = 'BrokerUnavailableError';
}

/**
 * A message of a directive was dead-lettered for a reason that is not the
 * operation's own failure (the orchestrator and worker disagree on the
 * message format, say). `reason` is the `x-weft-reason` header of the
 * dead-lettered copy.
 */
export class DeadLetterError extends WeftError {
  override name = 'DeadLetterError';
  constructor(readonly reason: string, readonly queue: string) {
    super(`a message of this directive was dead-lettered to ${queue}: ${reason}`);
  }
}
