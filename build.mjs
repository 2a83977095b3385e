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
import ts from 'typescript';

const root = dirname(fileURLToPath(import.meta.url));
const tsc = join(root, '.build', 'tsc');
const dist = join(root, 'dist');

const ENTRIES = [
  'index',
  'channels',
  'dataflow/index',
  'otel',
  'cli/main',
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
// faster than ten of 10 KB; left to itself rollup would cut a chunk for
// every set of entries that share a module.
//
// What a module needs is read from `uses` (usedImports): the modules whose
// code it uses, as rollup tree-shook them, not the files it names. An index
// re-exports a whole layer; a module that takes one function through it
// must not pull the rest into its chunk (the transport's inbox is the
// runner's alone, though config.ts imports checks from the same index).
function layersOf(uses) {
  const closure = (entry) => {
    const seen = new Set();
    const visit = (id) => {
      if (seen.has(id)) return;
      seen.add(id);
      for (const next of uses.get(id) ?? []) visit(next);
    };
    visit(join(tsc, `${entry}.js`));
    return seen;
  };
  const runner = closure(RUNNER);
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

/** Per module, the modules whose code it uses statically: a build of one file per module, tree-shaken, read back. */
async function usedImports(bundle) {
  const { output } = await bundle.generate({ format: 'es', preserveModules: true, preserveModulesRoot: tsc, hoistTransitiveImports: false });
  const moduleOf = new Map(output.filter((c) => c.type === 'chunk').map((c) => [c.fileName, c.facadeModuleId]));
  return new Map(output.filter((c) => c.type === 'chunk').map((c) => [c.facadeModuleId, c.imports.filter((f) => moduleOf.has(f)).map((f) => moduleOf.get(f))]));
}
const STARTUP_CHUNKS = { core: 'core', runtime: 'runtime', threads: 'threads', launch: 'start' };
// The runner a worker thread's bootstrap imports by URL
// (src/allocator/thread.ts). It is the 'threads' chunk itself rather than
// a file that re-exports that chunk's exports (one file less for each
// thread to load): an entry whose file may export more than its module
// does (the names other chunks import from it).
const RUNNER = 'allocator/worker';
const IMPORT_FN = 'importLater';

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
      name: 'runner-is-the-threads-chunk',
      buildStart() {
        this.emitFile({ type: 'chunk', id: join(tsc, `${RUNNER}.js`), fileName: `${RUNNER}.js`, preserveSignature: 'allow-extension' });
      },
    },
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
      // same folder, so a relative specifier resolves as it did. The
      // runner, in allocator/ (RUNNER), may hold none.
      name: 'dynamic-imports-out-of-the-start-up-chunks',
      renderChunk(code, chunk, { preserveModules }) {
        const runner = chunk.fileName === `${RUNNER}.js`;
        if (preserveModules || !(runner || Object.values(STARTUP_CHUNKS).includes(chunk.name))) return null;
        const at = [];
        const visit = (node) => {
          if (node === null || typeof node !== 'object') return;
          if (node.type === 'ImportExpression') at.push(node.start);
          for (const value of Object.values(node)) visit(value);
        };
        visit(this.parse(code));
        if (at.length === 0) return null;
        if (runner) throw new Error(`${chunk.fileName}: an import() in the runner makes tsx rewrite all of it with a source map; call it from a module of core, whose import() goes through chunks/import.js`);
        if (code.includes(IMPORT_FN)) throw new Error(`${chunk.name}: ${IMPORT_FN} is taken`);
        let out = code;
        for (const start of at.sort((a, b) => b - a)) out = out.slice(0, start) + IMPORT_FN + out.slice(start + 'import'.length);
        return { code: `import { ${IMPORT_FN} } from './import.js';\n${out}`, map: null };
      },
      generateBundle() {
        this.emitFile({ type: 'asset', fileName: 'chunks/import.js', source: `export const ${IMPORT_FN} = (specifier, options) => import(specifier, options);\n` });
      },
    },
    {
      // The comments stay in src/ (and the declarations keep their docs):
      // the JavaScript ships without them. Each thread's loader reads all
      // of its chunks, and tsx, when the program runs under it, first scans
      // every module that holds the word "import" with a lexer written in
      // JavaScript; a third of the start-up chunks' bytes were comments
      // (bench/startup.ts). TypeScript prints the code back as it was, laid
      // out and named as before: no minifier, so a stack trace's line still
      // reads.
      name: 'comments-out',
      renderChunk(code, chunk, { preserveModules }) {
        if (preserveModules) return null;
        const { outputText } = ts.transpileModule(code, {
          fileName: chunk.fileName,
          compilerOptions: { removeComments: true, allowJs: true, verbatimModuleSyntax: true, module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ESNext },
        });
        return { code: outputText, map: null };
      },
    },
  ],
  onwarn(warning) {
    // tsc's helper for a computed import() reads `this` at the top level; rollup says it is undefined there, as tsc expects.
    if (warning.code === 'THIS_IS_UNDEFINED') return;
    throw new Error(`rollup: ${warning.message}`);
  },
});
const layers = layersOf(await usedImports(bundle));
await bundle.write({
  dir: dist,
  format: 'es',
  entryFileNames: '[name].js',
  chunkFileNames: 'chunks/[name]-[hash].js',
  // An import statement costs each thread a resolution even when the file
  // is loaded already: a chunk names only the chunks it uses.
  hoistTransitiveImports: false,
  manualChunks: (id) => layers.get(id),
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
