// Builds dist/: the declarations as tsc writes them (one .d.ts per source
// file, as the types resolve), and the JavaScript bundled by rollup into the
// entry points plus shared chunks.
//
// Why bundle: every weft thread starts by importing weft, and Node's ESM
// loader spends about a millisecond per file resolving, reading and linking
// it. Unbundled, a worker thread loads about a hundred files before it runs
// a line of the user's code; bundled, a handful (bootstrap, runner, the
// user's script, the start-up chunks) and the entry. See bench/startup.ts.
//
// The entries are the package's exports and every module a thread is
// started on by URL (the runner of a worker thread, the network thread, the
// threads that serve tasks), so each keeps its path and its export names.
// Shared code goes to chunks/, once, so a thread that imports two entries
// still has one copy of each class. A module that reads import.meta.url
// (to find a sibling file, or to createRequire) gets the URL its own file
// would have had in an unbundled dist/, whatever chunk it lands in.
//
// Usage: node build.mjs (npm run build; npm pack runs it first).

import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rollup } from '@rollup/wasm-node';

const root = dirname(fileURLToPath(import.meta.url));
const tsc = join(root, '.build', 'tsc');
const dist = join(root, 'dist');

const ENTRIES = [
  'index',
  'channels',
  'dataflow/index',
  'otel',
  'cli/main',
  'allocator/worker',
  'transport/network',
  'runtime/backends/threads/thread-worker',
  'runtime/backends/cluster/cluster-worker',
  'runtime/backends/amqp/worker/on-thread',
];

rmSync(dist, { recursive: true, force: true });
rmSync(tsc, { recursive: true, force: true });
const compiled = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', tsc], {
  cwd: root,
  stdio: 'inherit',
});
if (compiled.status !== 0) process.exit(compiled.status ?? 1);

// The modules a thread loads at start-up, in four chunks: 'core', what
// `weft/channels` imports statically (Config, initialize, codecs: what a
// program's main thread needs, and what a worker thread re-running it
// needs to reach its initialize() call); 'runtime', what the main entry
// adds; 'threads', what a worker thread's runner adds (an endpoint, its
// rings and channels), which the main thread of a program of threads
// never loads; 'start' (from src/allocator/launch.ts), what initialize()
// loads in the main thread to start threads (their fabric, the guards),
// which a worker never loads. Node's loader resolves, reads and links each
// file (and each import statement of each), so one file of 100 KB starts
// faster than ten
// of 10 KB; left to itself rollup would cut a chunk for every set of
// entries that share a module.
function layersOf(getModuleInfo) {
  const closure = (entry) => {
    const seen = new Set();
    const visit = (id) => {
      const info = getModuleInfo(id);
      if (seen.has(id) || info === null || info.isExternal) return;
      seen.add(id);
      for (const next of info.importedIds) visit(next);
    };
    visit(join(tsc, `${entry}.js`));
    return seen;
  };
  const runner = closure('allocator/worker');
  const launch = closure('allocator/launch');
  const map = new Map();
  // What both a runner and a launch need (a worker's report, its return
  // value's codec) goes to core, which both load anyway.
  const core = [...closure('channels'), ...[...runner].filter((id) => launch.has(id))];
  for (const [ids, chunk] of [[core, STARTUP_CHUNKS.core], [closure('index'), STARTUP_CHUNKS.runtime], [runner, STARTUP_CHUNKS.threads], [launch, STARTUP_CHUNKS.launch]]) {
    for (const id of ids) if (!map.has(id)) map.set(id, chunk);
  }
  return map;
}
const STARTUP_CHUNKS = { core: 'core', runtime: 'runtime', threads: 'threads', launch: 'start' };
const IMPORT_FN = 'importLater';

let layers;
const bundle = await rollup({
  input: Object.fromEntries(ENTRIES.map((e) => [e, join(tsc, `${e}.js`)])),
  // Packages (msgpackr, the optional peers) and node: builtins stay imports.
  external: (id) => !id.startsWith('.') && !id.startsWith('/'),
  // Importing a builtin or a package has no side effect weft relies on: an
  // import whose bindings a chunk does not use is dropped (a thread would
  // load node:crypto or node:http for nothing).
  treeshake: { moduleSideEffects: (_id, external) => !external },
  plugins: [
    {
      name: 'import-meta-url-of-the-source-file',
      resolveImportMeta(property, { chunkId, moduleId }) {
        if (property !== 'url') return null;
        const own = relative(tsc, moduleId).split(sep).join('/');
        const from = dirname(join(dist, chunkId));
        const path = relative(from, join(dist, own)).split(sep).join('/');
        return `new URL(${JSON.stringify(path.startsWith('.') ? path : `./${path}`)}, import.meta.url).href`;
      },
    },
    {
      // tsx, when a program runs under it, rewrites every file that holds
      // an import() with a source map of the whole file: for the two
      // start-up chunks, about 100 ms of the main thread's CPU. Their
      // import() calls go through chunks/import.js instead, one line in the
      // same folder, so a relative specifier resolves as it did.
      name: 'dynamic-imports-out-of-the-start-up-chunks',
      renderChunk(code, chunk) {
        if (!Object.values(STARTUP_CHUNKS).includes(chunk.name)) return null;
        const at = [];
        const visit = (node) => {
          if (node === null || typeof node !== 'object') return;
          if (node.type === 'ImportExpression') at.push(node.start);
          for (const value of Object.values(node)) visit(value);
        };
        visit(this.parse(code));
        if (at.length === 0) return null;
        if (code.includes(IMPORT_FN)) throw new Error(`${chunk.name}: ${IMPORT_FN} is taken`);
        let out = code;
        for (const start of at.sort((a, b) => b - a)) out = out.slice(0, start) + IMPORT_FN + out.slice(start + 'import'.length);
        return { code: `import { ${IMPORT_FN} } from './import.js';\n${out}`, map: null };
      },
      generateBundle() {
        this.emitFile({ type: 'asset', fileName: 'chunks/import.js', source: `export const ${IMPORT_FN} = (specifier, options) => import(specifier, options);\n` });
      },
    },
  ],
  onwarn(warning) {
    // tsc's helper for a computed import() reads `this` at the top level; rollup says it is undefined there, as tsc expects.
    if (warning.code === 'THIS_IS_UNDEFINED') return;
    throw new Error(`rollup: ${warning.message}`);
  },
});
await bundle.write({
  dir: dist,
  format: 'es',
  entryFileNames: '[name].js',
  chunkFileNames: 'chunks/[name]-[hash].js',
  // An import statement costs each thread a resolution even when the file
  // is loaded already: a chunk names only the chunks it uses.
  hoistTransitiveImports: false,
  manualChunks(id, { getModuleInfo }) {
    layers ??= layersOf(getModuleInfo);
    return layers.get(id);
  },
});
await bundle.close();

// Declarations keep the source tree: the types of every export resolve as tsc wrote them.
for (const entry of readdirSync(tsc, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
  const to = join(dist, relative(tsc, entry.parentPath), entry.name);
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(join(entry.parentPath, entry.name), to);
}
// The bootstrap is plain JavaScript a thread runs first, by path.
cpSync(join(root, 'src', 'allocator', 'bootstrap.mjs'), join(dist, 'allocator', 'bootstrap.mjs'));
rmSync(join(root, '.build'), { recursive: true, force: true });
