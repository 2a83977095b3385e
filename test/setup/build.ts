// vitest globalSetup: build the package once, so tests can run plain
// JavaScript programs against dist/ the way users of the package do.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  // tsc reports type errors on stdout: let them through, so a failed build says why.
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}
