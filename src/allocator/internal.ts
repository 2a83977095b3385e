// The allocator layer's internal index: what the runtime layer uses beyond
// the public surface (index.ts), for its thread and cluster backends and
// for the way a script meets a runtime's start. Not `Hosted`, the thread
// backend's pool: the runtime's facade imports this file, and a program
// (or a worker thread re-running it) that starts no pool of threads must
// not load an endpoint's rings and channels for it; the backend imports
// hosted.ts itself, on demand.
export { msgpackr, refusal } from './codec.ts';
export { checkConfig, DEFAULT_MAX_MESSAGE_BYTES, peersOf, type Settings } from './config.ts';
export { importUntilStart, inClosureWorker, initializeModule, reachedStart, testRunner } from './initialize.ts';
