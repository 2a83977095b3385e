// Deterministic inputs for bench/cost.ts (never committed: generated into a
// temp dir). A corpus of Zipf-distributed words with mixed case and
// punctuation, and a graph whose destinations are skewed towards low ids.
//   node bench/cost-data.ts corpus <file> <megabytes>
//   node bench/cost-data.ts graph <file> <nodes> <edges>
import { openSync, writeSync, closeSync } from 'node:fs';

/** xorshift32: the same stream on every machine. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

const BLOCK = 4 << 20;

/** Writes `bytes` bytes of text: lines of 1-16 words from a 200 000-word vocabulary, Zipf-like, 1 in 8 capitalised. */
export function corpus(file: string, bytes: number): void {
  const random = rng(0x5eed);
  const letters = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const vocabulary: Buffer[] = [];
  for (let w = 0; w < 200_000; w++) {
    const len = 2 + Math.floor(random() * 9);
    let s = '';
    for (let i = 0; i < len; i++) s += letters[Math.floor(random() * (i === 0 ? 26 : 36))];
    vocabulary.push(Buffer.from(s, 'latin1'));
  }
  const fd = openSync(file, 'w');
  const out = Buffer.alloc(BLOCK + 4096);
  let written = 0;
  while (written < bytes) {
    let n = 0;
    while (n < BLOCK) {
      const words = 1 + Math.floor(random() * 16);
      for (let k = 0; k < words; k++) {
        const u = random();
        const word = vocabulary[Math.floor(vocabulary.length * u * u * u)]!;
        const start = n;
        n += word.copy(out, n);
        if (random() < 0.125) out[start] = out[start]! >= 97 ? out[start]! - 32 : out[start]!;
        const r = random();
        out[n++] = r < 0.05 ? 44 : r < 0.08 ? 46 : r < 0.09 ? 45 : 32;
        if (out[n - 1] !== 32) out[n++] = 32;
      }
      out[n - 1] = 10;
    }
    const take = Math.min(n, bytes - written);
    writeSync(fd, out, 0, take);
    written += take;
  }
  closeSync(fd);
}

/** Writes `edges` lines `src dst`: sources uniform over `nodes`, destinations skewed towards low ids. */
export function graph(file: string, nodes: number, edges: number): void {
  const random = rng(0x9a9e);
  const fd = openSync(file, 'w');
  let chunk = '';
  for (let e = 0; e < edges; e++) {
    const u = random();
    chunk += `${Math.floor(random() * nodes)} ${Math.floor(nodes * u * u)}\n`;
    if (chunk.length > BLOCK) {
      writeSync(fd, chunk, null, 'latin1');
      chunk = '';
    }
  }
  writeSync(fd, chunk, null, 'latin1');
  closeSync(fd);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [what, file, a, b] = process.argv.slice(2);
  if (what === 'corpus' && file !== undefined) corpus(file, Number(a) * 2 ** 20);
  else if (what === 'graph' && file !== undefined) graph(file, Number(a), Number(b));
  else {
    console.error('usage: cost-data.ts corpus <file> <megabytes> | graph <file> <nodes> <edges>');
    process.exit(2);
  }
}
