import { weft as netWeft, defaultPlan } from '/work/wt/net/bench/cluster.ts';
import { weft as baseWeft } from '/work/base/bench/cluster.ts';
const plan = defaultPlan;
const MiB = 1 << 20;
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
const sides = { base: { bulk: [] as number[], small: [] as number[] }, net: { bulk: [] as number[], small: [] as number[] } };
const pairs: { bulk: number; small: number }[] = [];
for (let k = 0; k < 4; k++) {
  const b = await baseWeft(plan);
  const n = await netWeft(plan);
  sides.base.bulk.push(...b.bulkMs); sides.base.small.push(...b.smallMs);
  sides.net.bulk.push(...n.bulkMs); sides.net.small.push(...n.smallMs);
  pairs.push({ bulk: median(b.bulkMs) / median(n.bulkMs), small: median(b.smallMs) / median(n.smallMs) });
  console.log(`pair ${k}: bulk net/base ${(median(b.bulkMs) / median(n.bulkMs)).toFixed(3)}, small net/base ${(median(b.smallMs) / median(n.smallMs)).toFixed(3)}`);
}
const bytes = plan.frames * plan.frameBytes / MiB;
for (const [name, s] of Object.entries(sides)) {
  console.log(`${name}: bulk ${(bytes / (median(s.bulk) / 1000)).toFixed(0)} MiB/s, small ${(plan.objects / (median(s.small) / 1000)).toFixed(0)} msg/s`);
}
console.log(`pooled ratio net/base: bulk ${(median(sides.base.bulk) / median(sides.net.bulk)).toFixed(3)}, small ${(median(sides.base.small) / median(sides.net.small)).toFixed(3)}`);
