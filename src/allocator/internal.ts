// The allocator layer's internal index: what the runtime layer uses beyond
// the public surface (index.ts), for its thread and cluster backends and
// for the way a script meets a runtime's start.
export { msgpackr, refusal } from './codec.ts';
export { checkConfig, DEFAULT_MAX_MESSAGE_BYTES, peersOf, type Settings } from './config.ts';
export { Hosted } from './hosted.ts';
export { importUntilStart, inClosureWorker, initializeModule, reachedStart, testRunner } from './initialize.ts';
