// Plain JavaScript on purpose: this is the first thing a weft worker thread
// runs, before any TypeScript loader exists in it. The main thread decided
// whether it must register tsx (src/typescript.ts): only when the code is
// TypeScript and neither a tsx the program runs under (inherited through
// execArgv) nor Node's own type stripping runs it.
import { workerData } from 'node:worker_threads';

const boot = workerData.weft;
if (boot.tsx) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { serve } = await import(boot.runner);
// Not awaited: in the closure form the re-run script stops for good at its
// initialize() call, so serve() never settles, and Node 22+ warns about a
// top-level await still pending when the thread is stopped.
void serve(boot);
