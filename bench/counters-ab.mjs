// The substrate counters' cost: small objects between two threads, two weft
// builds interleaved in one process, as wall-clock throughput and as thread
// CPU time per message (process.threadCpuUsage, Node >= 23.9: less at the
// mercy of a loaded machine than wall time). Prints each pair and the
// median ratio (candidate over anchor; above 1 is faster).
//
//   node bench/counters-ab.mjs <anchor dist/index.js> <candidate dist/index.js> [rounds]

import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const N = 400_000;

export async function objects(allocator) {
  const [push, pull] = allocator.allocate(1);
  const t0 = performance.now();
  const c0 = process.threadCpuUsage();
  for (const p of push) if (allocator.index !== 0) p.close();
  if (allocator.index === 0) {
    for (let i = 0; i < N; i++) if (!push[1].send({ i, name: 'item', ok: true })) await push[1].ready();
    for (const p of push) p.close();
  }
  for await (const _ of pull);
  const c = process.threadCpuUsage(c0);
  return { ms: performance.now() - t0, cpuUs: c.user + c.system };
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const [anchorPath, candidatePath, rounds = '12'] = process.argv.slice(2);
  if (candidatePath === undefined) throw new Error('usage: node bench/counters-ab.mjs <anchor dist/index.js> <candidate dist/index.js> [rounds]');
  const load = (p) => import(pathToFileURL(resolve(p)).href);
  const builds = { anchor: await load(anchorPath), candidate: await load(candidatePath) };
  const once = async (weft) => {
    const g = await weft.initialize(weft.Config.process(2), { module: new URL(import.meta.url), export: 'objects' });
    const [a, b] = await g.join();
    return { rate: N / a.ms / 1e3, nsPerMessage: ((a.cpuUs + b.cpuUs) * 1e3) / N };
  };
  const wall = [];
  const cpu = [];
  for (let r = 0; r < Number(rounds); r++) {
    const t = {};
    for (const k of r % 2 ? ['anchor', 'candidate'] : ['candidate', 'anchor']) t[k] = await once(builds[k]);
    wall.push(t.candidate.rate / t.anchor.rate);
    cpu.push(t.anchor.nsPerMessage / t.candidate.nsPerMessage);
    console.log(`M msg/s ${t.anchor.rate.toFixed(3)} -> ${t.candidate.rate.toFixed(3)}; CPU ns/msg ${t.anchor.nsPerMessage.toFixed(0)} -> ${t.candidate.nsPerMessage.toFixed(0)}`);
  }
  const median = (xs) => xs.sort((x, y) => x - y)[xs.length >> 1].toFixed(3);
  console.log(`median ratio: wall ${median(wall)} (${wall[0].toFixed(3)} to ${wall.at(-1).toFixed(3)}), CPU ${median(cpu)} (${cpu[0].toFixed(3)} to ${cpu.at(-1).toFixed(3)})`);
}
