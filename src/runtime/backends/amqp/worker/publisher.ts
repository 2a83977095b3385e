// What a worker publishes on its confirm channel: results and progress to a
// lease's result queue, dead letters, and task messages published anew (see
// consumer.ts). All but progress resolve once the broker confirms them.
//
// Progress details from a worker's tasks on their way to the orchestrator:
// gathered per result queue for RELAY_MS, the latest detail of each task
// winning, then sent as one message. Each task's context already throttles
// its details (core/context.ts); this bounds the messages a batch of many
// chatty tasks costs its result queue to one per RELAY_MS.

import type { ConsumeMessage } from 'amqplib';
import type { TaskProgress } from '../../../core/task.ts';
import { publishConfirmed, type Session } from '../shared/connection.ts';
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
  taskId,
  traceContextOf,
  TYPE_PROGRESS,
  TYPE_RESULTS,
  TYPE_TASKS,
  type LeaseTaskId,
} from '../shared/messages.ts';
import type { Names } from '../shared/topology.ts';

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

  /** A task message published again as `content`, its routing, reply-to, key and trace context kept, carrying the deaths it was present at. */
  anew(session: Session, original: ConsumeMessage, content: Buffer, format: number, count: number, deaths: number): Promise<void> {
    const headers = original.properties.headers;
    const key = headerString(headers, HEADER_KEY) ?? original.fields.routingKey;
    const grace = headers?.[HEADER_GRACE_MS] as unknown;
    return publishConfirmed(session.channel, this.names.taskExchange, original.fields.routingKey, content, {
      persistent: true,
      contentType: CONTENT_TYPE,
      type: TYPE_TASKS,
      replyTo: original.properties.replyTo,
      headers: {
        [HEADER_FORMAT]: format,
        [HEADER_KEY]: key,
        [HEADER_COUNT]: count,
        [HEADER_DEATHS]: deaths,
        ...(grace === undefined ? {} : { [HEADER_GRACE_MS]: grace }),
        ...traceContextOf(headers),
      },
    });
  }
}

const RELAY_MS = 50;

interface Held {
  readonly session: Session;
  readonly key: string;
  /** By task identity; a Map keeps the order in which tasks first reported. */
  readonly updates: Map<LeaseTaskId, TaskProgress>;
}

export class ProgressRelay {
  /** By result queue. */
  private readonly held = new Map<string, Held>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly publisher: WorkerPublisher) {}

  add(session: Session, replyTo: string, key: string, updates: readonly TaskProgress[]): void {
    let held = this.held.get(replyTo);
    if (held === undefined || held.session !== session) {
      held = { session, key, updates: new Map() };
      this.held.set(replyTo, held);
    }
    for (const update of updates) {
      const id = taskId(update.index, update.stage, update.attempt);
      // Deleted first, so a newer detail goes after the others' older ones.
      held.updates.delete(id);
      held.updates.set(id, update);
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      for (const replyTo of [...this.held.keys()]) this.flush(replyTo);
    }, RELAY_MS);
  }

  /** Sends what is held for `replyTo` now: before a result, so no detail of a task arrives after it. */
  flush(replyTo: string): void {
    const held = this.held.get(replyTo);
    if (held === undefined) return;
    this.held.delete(replyTo);
    if (held.session.lost) return;
    this.publisher.progress(held.session, replyTo, held.key, [...held.updates.values()]);
  }

  /** Nothing held is sent (the worker is closing). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.held.clear();
  }
}
