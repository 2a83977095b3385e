// `npm run lint`: typescript-eslint with type information, for the promise
// rules (a floating promise, or a promise where a callback's result is
// ignored, is an unhandled rejection waiting to happen), and the layers:
// runtime -> allocator -> transport, each reached from above only through
// its entry files. Shared files at the top of src/ (errors, fifo,
// optional, typescript) may be imported from any layer and import none;
// the package's entries there (index, channels, otel) import the layers.
import tseslint from 'typescript-eslint';

// A layer's entry files: the only files of it another layer may import.
//   allocator/index.ts     the public surface of the channels
//   allocator/internal.ts  what the runtime uses beyond it
//   transport/index.ts     the in-process fabric and config checks
//   transport/network.ts   a cluster's sockets, imported on demand
const ENTRIES = { allocator: ['index', 'internal'], transport: ['index', 'network'] };

const through = (layer) => ({
  regex: `(^|/)${layer}/(?!(${ENTRIES[layer].join('|')})\\.ts$).+`,
  message: `reach the ${layer} layer only through ${ENTRIES[layer].map((e) => `${layer}/${e}.ts`).join(' or ')} (eslint.config.js)`,
});
const never = (layer, why) => ({ regex: `(^|/)${layer}/`, message: why });
const layers = (...patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

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
  { files: ['src/runtime/**/*.ts'], rules: layers(through('allocator'), never('transport', 'the runtime reaches the transport only through the allocator')) },
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
