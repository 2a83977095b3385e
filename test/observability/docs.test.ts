// What README.md and docs/observability.md tell a user to subscribe to: every
// diagnostics channel weft publishes on (as found in its sources) is named in
// both, docs/observability.md has a subscriber for each in its examples, and
// those examples (and the README's) type-check against weft as written, so
// a message field they read is one the message has.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** The channel names weft's sources publish on: `channel('weft:…')` and `tracingChannel(…('weft:…')`, outside weft/otel (a subscriber). */
function publishedChannels(): string[] {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (path.endsWith('.ts') && !path.endsWith('otel.ts')) {
        for (const match of readFileSync(path, 'utf8').matchAll(/(?:channel|tracingChannel)(?:<[^>]*>)?\('(weft:[a-z-]+)'\)/g)) names.add(match[1]!);
      }
    }
  };
  walk(join(root, 'src'));
  return [...names].sort();
}

/** The ```ts blocks of `markdown` between `heading` and the next heading of its level. */
function blocks(markdown: string, heading: string): string[] {
  const at = markdown.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`no ${heading}`);
  const level = /^#+/.exec(heading)![0];
  const rest = markdown.slice(at + heading.length + 2);
  const end = rest.search(new RegExp(`\\n${level} `));
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

/** The TypeScript errors of `files` (virtual, under test/observability), compiled with the repository's options: `weft` is src/. */
function typeErrors(files: Record<string, string>): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!;
  const virtual = new Map(Object.entries(files).map(([name, text]) => [join(root, 'test/observability', name), text]));
  const host = ts.createCompilerHost(config.options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) => {
    const text = virtual.get(name);
    return text === undefined ? getSourceFile(name, version, ...rest) : ts.createSourceFile(name, text, version);
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => virtual.has(name) || fileExists(name);
  // The package's exports map weft/otel to dist/otel.js; from the checkout it is src/otel.ts, as weft is src/index.ts.
  const paths = { ...config.options.paths, 'weft/otel': ['./src/otel.ts'] };
  const program = ts.createProgram({ rootNames: [...virtual.keys()], options: { ...config.options, paths, noEmit: true, noUnusedLocals: false }, host });
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file !== undefined && virtual.has(d.file.fileName))
    .map((d) => `${d.file!.fileName}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
}

describe('what the docs tell a user to subscribe to', () => {
  const published = publishedChannels();
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const docs = readFileSync(join(root, 'docs/observability.md'), 'utf8');
  const examples = blocks(docs, '## `diagnostics_channel`');

  it('finds the channels weft publishes on in its sources', () => {
    expect(published).toEqual(['weft:dead-letter', 'weft:directive', 'weft:overflow', 'weft:peer-joined', 'weft:peer-lost', 'weft:retry', 'weft:task', 'weft:thread-replaced']);
  });

  it.each(published)('README.md and docs/observability.md name %s, and the docs subscribe to it in an example', (name) => {
    expect(readme).toContain(`\`${name}\``);
    expect(docs).toContain(`\`${name}\``);
    const subscribed = new RegExp(`(?:subscribe|tracingChannel<[^>]*>)\\('${name}'`);
    expect(examples.some((example) => subscribed.test(example)), `a docs example subscribes to ${name}`).toBe(true);
  });

  it("the docs' subscriber examples and the README's observability example type-check against weft", () => {
    const [readmeExample] = blocks(readme, '## Observability');
    // The README's example uses a runtime and an operation of the reader's own.
    const prelude = "import { defineOperation, progressBar, Runtime, type RetryMessage } from 'weft';\n" + 'declare const runtime: Runtime;\ndeclare const images: string[];\nconst Resize = defineOperation(\'Resize\', (path: string) => path.length);\n';
    const files: Record<string, string> = { 'docs-readme-example.ts': prelude + readmeExample! };
    examples.forEach((example, i) => (files[`docs-subscriber-example-${i}.ts`] = example));
    expect(typeErrors(files)).toEqual([]);
  }, 300_000);
});
