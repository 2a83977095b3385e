// The AMQP workers an orchestrator has heard from, for the per-worker
// figures of `Runtime.metrics()`. A worker names itself in every result
// message's `x-weft-worker` header (`AmqpWorker.id`: host, pid and a random
// suffix it picks at start); the orchestrator gives each name it meets an
// index, in the order it first met them, which its results carry as `w`.
//
// The header comes from whoever can publish to the result queue, so it is
// not trusted: a message without it, with something other than a string,
// or with an implausible name (empty, or longer than MAX_ID_LENGTH) counts
// in its operations' figures but in no worker's. Past MAX_WORKERS names
// (a worker that renames itself per message), further names count in no
// worker either, so the table stays bounded.

import { HEADER_WORKER, headerString } from '../shared/messages.ts';

/** The longest worker name kept: a host name (up to 253 characters) and a pid fit. */
export const MAX_ID_LENGTH = 300;
/** The most worker names one orchestrator keeps. */
export const MAX_WORKERS = 4096;

export class WorkerNames {
  private readonly indices = new Map<string, number>();
  private readonly names: string[] = [];

  /** The index of the worker that published a result message with `headers`, or undefined if it named itself not (or not plausibly). */
  indexOf(headers: Record<string, unknown> | undefined): number | undefined {
    const name = headerString(headers, HEADER_WORKER);
    if (name === undefined || name.length === 0 || name.length > MAX_ID_LENGTH) return undefined;
    let index = this.indices.get(name);
    if (index === undefined) {
      if (this.names.length >= MAX_WORKERS) return undefined;
      index = this.names.push(name) - 1;
      this.indices.set(name, index);
    }
    return index;
  }

  /** The name of worker `index`. */
  nameOf(index: number): string | undefined {
    return this.names[index];
  }
}
