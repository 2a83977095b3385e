// Plain JavaScript on purpose: this is the first thing a weft worker thread
// runs, before any TypeScript loader exists in it. Node 20 does not carry
// tsx's loader into worker threads (not even with --import in execArgv), so
// the bootstrap registers it itself when the script or weft is TypeScript.
import { workerData } from 'node:worker_threads';

const boot = workerData.weft;
if (boot.tsx) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { serve } = await import(boot.runner);
await serve(boot);
