// What a runtime needs once it runs something: the execution of a
// directive, a stream's, and `Runtime.local`'s backend on this thread.
// runtime.ts loads this on first use, so that a program that imports weft
// and runs no directive (a worker thread re-running a script that imports
// weft for initialize(), a program of channels) never loads it.
export { execute } from './core/execution/execution.ts';
export { OutputStream } from './core/execution/stream.ts';
export { LoopbackBackend } from './backends/local/loopback.ts';
