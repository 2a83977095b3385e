// Plain JavaScript on purpose: this is the first thing a weft worker thread
// runs, before any TypeScript loader exists in it. The main thread decided
// whether it must register tsx (src/typescript.ts): only when the code is
// TypeScript and neither a tsx the program runs under (inherited through
// execArgv) nor Node's own type stripping runs it.
import { workerData } from 'node:worker_threads';

// Node's compile cache (22.1+) for this thread: a thread compiles the same
// files every run (weft, and the user's script the closure form re-runs),
// and a TypeScript file costs a thread about 150 ms of type stripping
// without it, a few ms with it. Only in threads weft starts: the main
// thread is the program's to configure. NODE_DISABLE_COMPILE_CACHE=1 turns
// it off, NODE_COMPILE_CACHE=dir moves it (os.tmpdir() by default).
process.getBuiltinModule('node:module').enableCompileCache?.();

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
