// `npm run lint`: typescript-eslint with type information, for the promise
// rules (a floating promise, or a promise where a callback's result is
// ignored, is an unhandled rejection waiting to happen), and the layers:
// runtime -> allocator -> transport, each reached from above only through
// its entry files (dataflow -> the allocator's public index); inside the
// runtime, facades -> backends -> channel-protocol -> core (docs/architecture.md).
// Shared files at the top of src/ (errors, fifo, optional, typescript) may
// be imported from any layer and import none; the package's entries there
// (index, channels, otel) import the layers.
import tseslint from 'typescript-eslint';

// A layer's entry files: the only files of it another layer may import.
//   allocator/index.ts     the public surface of the channels
//   allocator/internal.ts  what the runtime uses beyond it
//   allocator/hosted.ts    the thread backend's pool, imported on demand
//   transport/index.ts     the in-process fabric and config checks
//   transport/network.ts   a cluster's sockets, imported on demand
const ENTRIES = { allocator: ['index', 'internal', 'hosted'], transport: ['index', 'network'] };

const through = (layer) => ({
  regex: `(^|/)${layer}/(?!(${ENTRIES[layer].join('|')})\\.ts$).+`,
  message: `reach the ${layer} layer only through ${ENTRIES[layer].map((e) => `${layer}/${e}.ts`).join(' or ')} (eslint.config.js)`,
});
const never = (layer, why) => ({ regex: `(^|/)${layer}/`, message: why });
const layers = (...patterns) => ({ '@typescript-eslint/no-restricted-imports': ['error', { patterns }] });

// Inside the runtime: facades (runtime.ts, worker-runtime.ts) -> backends ->
// channel-protocol -> core, observability beside core. A later block's
// patterns replace an earlier one's, so each folder's list starts with the
// runtime's own.
const runtime = [through('allocator'), never('transport', 'the runtime reaches the transport only through the allocator')];
const facades = (why, allowTypeImports = false) => ({ regex: '(^|/)(runtime|worker-runtime)\\.ts$', message: why, allowTypeImports });
const backends = (why) => ({ regex: '(^|/)backends/', message: why });
const backend = (name, others) => ({
  files: [`src/runtime/backends/${name}/**/*.ts`],
  rules: layers(...runtime, facades('a backend is picked by the facades, never imports them'), {
    regex: `(^|/)(${others.join('|')})/`,
    message: `the ${name} backend imports no other backend${name === 'amqp' ? ' but threads (its task threads, docs/architecture.md)' : ''}`,
  }),
});

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.cache/', 'coverage/'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['vitest.config.ts'] }, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  { files: ['src/runtime/**/*.ts'], rules: layers(...runtime) },
  {
    // Core names the Runtime type in directives' signatures (run(runtime)), a type only.
    files: ['src/runtime/core/**/*.ts'],
    rules: layers(
      ...runtime,
      facades('core knows nothing of the runtimes built on it (a type-only import of Runtime is allowed)', true),
      backends('core knows nothing of where tasks run'),
      never('channel-protocol', 'core knows nothing of how a coordinator feeds workers'),
    ),
  },
  {
    files: ['src/runtime/observability/**/*.ts'],
    rules: layers(...runtime, facades('observability sits beside core, below the facades'), backends('observability sits beside core, below the backends'), never('channel-protocol', 'observability sits beside core')),
  },
  {
    files: ['src/runtime/channel-protocol/**/*.ts'],
    rules: layers(...runtime, facades('the channel protocol sits below the facades'), backends('the channel protocol is shared by backends and imports none')),
  },
  {
    files: ['src/dataflow/**/*.ts'],
    rules: layers(
      { regex: '(^|/)allocator/(?!index\\.ts$).+', message: 'dataflow is built on the allocator\'s public index only, as a user would build it' },
      never('runtime', 'dataflow is a second runtime beside the task runtime, not on it'),
      never('transport', 'dataflow reaches the transport only through the allocator'),
    ),
  },
  backend('amqp', ['cluster', 'local']),
  backend('cluster', ['amqp', 'local', 'threads']),
  backend('local', ['amqp', 'cluster', 'threads']),
  backend('threads', ['amqp', 'cluster', 'local']),
  { files: ['src/allocator/**/*.ts'], rules: layers(never('runtime', 'the allocator knows nothing of the runtime above it'), through('transport')) },
  {
    files: ['src/transport/**/*.ts'],
    rules: layers(never('runtime', 'the transport knows nothing of the layers above it'), never('allocator', 'the transport knows nothing of the layers above it')),
  },
  {
    files: ['src/*.ts'],
    ignores: ['src/index.ts', 'src/channels.ts', 'src/otel.ts'],
    rules: layers(never('runtime', 'a shared file imports no layer'), never('allocator', 'a shared file imports no layer'), never('transport', 'a shared file imports no layer')),
  },
);
