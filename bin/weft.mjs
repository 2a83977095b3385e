#!/usr/bin/env node
// The `weft` command. Runs the built CLI when the package is built, and the
// TypeScript source through tsx in a checkout that is not.
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
