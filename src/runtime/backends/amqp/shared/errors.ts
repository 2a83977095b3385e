// Failures particular to the AMQP backend, one class per failure. The first
// two reach users (a directive rejects with them); the others are causes:
// what `BrokerUnavailableError` and `DeadLetterError` carry as `cause`, and
// what a worker writes in a dead letter's `x-weft-reason`.

import { WeftError } from '../../../../errors.ts';
import { RuntimeClosedError } from '../../../core/errors.ts';

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
  constructor(
    readonly reason: string,
    readonly queue: string,
    options?: { cause?: unknown },
  ) {
    super(`a message of this directive was dead-lettered to ${queue}: ${reason}`, options);
  }
}

/** A message body or its headers are not weft's message format (see messages.ts). */
export class MalformedMessageError extends WeftError {
  override name = 'MalformedMessageError';
}

/** The connection to the broker, or its channel, closed or failed; `cause` is amqplib's error when it gave one. */
export class SessionLostError extends WeftError {
  override name = 'SessionLostError';
}

/** The broker refused (nacked) a published message. */
export class PublishRefusedError extends WeftError {
  override name = 'PublishRefusedError';
}
