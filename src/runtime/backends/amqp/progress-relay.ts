// Progress details from a worker's tasks on their way to the orchestrator:
// gathered per result queue for RELAY_MS, the latest detail of each task
// winning, then sent as one message. Each task's context already throttles
// its details (core/context.ts); this bounds the messages a batch of many
// chatty tasks costs its result queue to one per RELAY_MS.

import type { TaskProgress } from '../../core/task.ts';
import type { Session } from './connection.ts';
import type { WorkerPublisher } from './worker-publisher.ts';

const RELAY_MS = 50;

interface Held {
  readonly session: Session;
  readonly key: string;
  /** By task identity; a Map keeps the order in which tasks first reported. */
  readonly updates: Map<string, TaskProgress>;
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
      const id = `${update.index}:${update.stage}:${update.attempt}`;
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
