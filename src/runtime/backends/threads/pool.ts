// The pool of worker threads under `Runtime.inMemory`: the hosted allocator's
// threads, each running thread-worker.ts with the operations' modules.

import { fileURLToPath } from 'node:url';
import { Hosted } from '../../../allocator/hosted.ts';

export interface ThreadBackendOptions {
  workers: number;
  modules: readonly (string | URL)[];
  /** Most parked async tasks per thread (see Dispatcher). */
  concurrency?: number | undefined;
  /** Tasks each thread may always hold (see Dispatcher); default 2. */
  minQueued?: number | undefined;
  cancelGraceMs?: number | undefined;
  maxMessageBytes?: number | undefined;
}

function workerModule(): string {
  const self = import.meta.url;
  return fileURLToPath(new URL(self.endsWith('.ts') ? './thread-worker.ts' : './thread-worker.js', self));
}

/** Starts `options.workers` threads of the hosted allocator, each importing `modules`. */
export function startPool(options: ThreadBackendOptions, modules: readonly string[]): Promise<Hosted> {
  return Hosted.start({
    workers: options.workers,
    module: workerModule(),
    export: 'serveThread',
    imports: modules,
    maxMessageBytes: options.maxMessageBytes,
  });
}
