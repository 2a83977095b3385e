// What a worker publishes on its confirm channel: results and progress to a
// lease's result queue, dead letters, and task messages published anew (see
// suspects.ts). All but progress resolve once the broker confirms them.

import type { ConsumeMessage } from 'amqplib';
import type { TaskProgress } from '../../core/task.ts';
import { publishConfirmed, type Session } from './connection.ts';
import {
  CONTENT_TYPE,
  encodeProgress,
  FORMAT,
  HEADER_COUNT,
  HEADER_DEATHS,
  HEADER_FORMAT,
  HEADER_GRACE_MS,
  HEADER_KEY,
  HEADER_MS,
  HEADER_REASON,
  HEADER_WORKER,
  headerString,
  TYPE_PROGRESS,
  TYPE_RESULTS,
  TYPE_TASKS,
} from './messages.ts';
import type { Names } from './topology.ts';

export class WorkerPublisher {
  /** Messages published to the dead letters. */
  deadLettered = 0;

  constructor(
    private readonly names: Names,
    /** This worker's `x-weft-worker`. */
    private readonly worker: string,
    private readonly log: ((line: string) => void) | undefined,
  ) {}

  /** The results of one task message (a result message's body), with the time the worker spent on them. */
  results(session: Session, replyTo: string, key: string, body: Buffer, elapsedMs: number): Promise<void> {
    return publishConfirmed(session.channel, '', replyTo, body, {
      persistent: true,
      contentType: CONTENT_TYPE,
      type: TYPE_RESULTS,
      headers: { [HEADER_FORMAT]: FORMAT, [HEADER_KEY]: key, [HEADER_MS]: elapsedMs, [HEADER_WORKER]: this.worker },
    });
  }

  /** Progress details: not persistent, and not waited for (a lost one is overtaken by the next, or by the result). */
  progress(session: Session, replyTo: string, key: string, updates: readonly TaskProgress[]): void {
    publishConfirmed(session.channel, '', replyTo, encodeProgress(updates), {
      contentType: CONTENT_TYPE,
      type: TYPE_PROGRESS,
      headers: { [HEADER_FORMAT]: FORMAT, [HEADER_KEY]: key },
    }).catch(() => {});
  }

  /**
   * A dead letter of lease `key` saying `reason`. `format` is the body's:
   * FORMAT for tasks this code encoded or decoded, the original's header
   * (or none) for a body it could not read.
   */
  deadLetter(session: Session, key: string, content: Buffer, reason: string, format: number | undefined = FORMAT): Promise<void> {
    this.deadLettered++;
    this.log?.(`dead-lettered a message of ${key}: ${reason}`);
    const headers: Record<string, unknown> = { [HEADER_REASON]: reason, [HEADER_WORKER]: this.worker, [HEADER_KEY]: key };
    if (format !== undefined) headers[HEADER_FORMAT] = format;
    return publishConfirmed(session.channel, this.names.deadExchange, key, content, { persistent: true, contentType: CONTENT_TYPE, headers });
  }

  /** A dead letter (see deadLetter) for `message`, acked once it is confirmed. */
  async deadLetterAndAck(session: Session, message: ConsumeMessage, key: string, content: Buffer, reason: string, format?: number): Promise<void> {
    try {
      await this.deadLetter(session, key, content, reason, format);
      session.channel.ack(message);
    } catch {
      // Session lost: the message comes back and is judged again.
    }
  }

  /** A task message published again as `content`, its routing, reply-to and key kept, carrying the deaths it was present at. */
  anew(session: Session, original: ConsumeMessage, content: Buffer, format: number, count: number, deaths: number): Promise<void> {
    const headers = original.properties.headers;
    const key = headerString(headers, HEADER_KEY) ?? original.fields.routingKey;
    const grace = headers?.[HEADER_GRACE_MS] as unknown;
    return publishConfirmed(session.channel, this.names.taskExchange, original.fields.routingKey, content, {
      persistent: true,
      contentType: CONTENT_TYPE,
      type: TYPE_TASKS,
      replyTo: original.properties.replyTo,
      headers: { [HEADER_FORMAT]: format, [HEADER_KEY]: key, [HEADER_COUNT]: count, [HEADER_DEATHS]: deaths, ...(grace === undefined ? {} : { [HEADER_GRACE_MS]: grace }) },
    });
  }
}
