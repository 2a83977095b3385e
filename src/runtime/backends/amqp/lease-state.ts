// What the orchestrator knows of one lease (one directive): its result
// queue, on which session it is declared and consumed, the tasks waiting for
// that, and the tasks not answered yet.

import type { LeaseHandlers } from '../../core/backend.ts';
import type { Task } from '../../core/task.ts';
import type { Session } from './connection.ts';

export interface LeaseState {
  readonly key: string;
  readonly queue: string;
  /** Set when a directive takes the lease (a spare has none until then). */
  handlers: LeaseHandlers;
  /** The directive's `cancelGraceMs`, sent with its tasks; undefined: the workers' own. */
  graceMs: number | undefined;
  open: boolean;
  /** The session the result queue was (being) declared and consumed on. */
  openedOn: Session | undefined;
  /** The session whose channel consumes this lease's queue. */
  consuming: Session | undefined;
  consumerTag: string | undefined;
  /** Tasks dispatched before the result queue was ready. */
  backlog: Task[];
  /** Tasks without an answer yet, by `idOf(index, stage, attempt)`. */
  readonly unanswered: Set<number | string>;
  /** Cancelled tasks without an answer yet, by `idOf`, with why. */
  readonly cancelling: Map<number | string, { index: number; stage: number; attempt: number; why: string }>;
}

const NO_HANDLERS: LeaseHandlers = { results: () => {}, failed: () => {} };

export function newLease(key: string, queue: string): LeaseState {
  return {
    key,
    queue,
    handlers: NO_HANDLERS,
    graceMs: undefined,
    open: true,
    openedOn: undefined,
    consuming: undefined,
    consumerTag: undefined,
    backlog: [],
    unanswered: new Set(),
    cancelling: new Map(),
  };
}

/**
 * A task's identity within its lease: its index for a first stage's first
 * attempt (a small integer, the cheapest key a Set has, and the common
 * case), a negative number for other stages and attempts while it fits, a
 * string beyond.
 */
export const idOf = (index: number, stage: number, attempt: number): number | string =>
  stage === 0 && attempt === 0
    ? index
    : index < 0x2_0000_0000 && stage < 1024 && attempt < 1024
      ? -((index * 1024 + stage) * 1024 + attempt) - 1
      : `${index}:${stage}:${attempt}`;
