// A symmetric hash join on weft/dataflow: orders meet their customers at
// the worker owning the customer id, as soon as both sides have arrived.
// Both relations are generated: worker w makes every w-th row.
//   npx tsx examples/dataflow/join.ts -w <threads> [--customers 1000] [--orders 100000]
// The last line of stdout is {"pairs": p, "revenue": r, "topCountry": [country, revenue]}, from the joined pairs.
import { Config, initialize } from 'weft';
import { dataflow, fromIterable } from 'weft/dataflow';

const { config, rest } = Config.fromArgs();
const flag = (name: string, fallback: number): number => {
  const at = rest.indexOf(name);
  return at >= 0 ? Number(rest[at + 1]) : fallback;
};
const customers = flag('--customers', 1000);
const orders = flag('--orders', 100_000);
const COUNTRIES = ['de', 'fr', 'jp', 'nz', 'us'];

const guards = await initialize(config, (allocator) => {
  const totals = dataflow(allocator, (scope) => {
    const mine = function* <T>(count: number, make: (i: number) => T): Generator<T> {
      for (let i = scope.index; i < count; i += scope.peers) yield make(i);
    };
    const people = fromIterable(scope, mine(customers, (id) => ({ id, country: COUNTRIES[(id * 7) % COUNTRIES.length]! })));
    const sales = fromIterable(scope, mine(orders, (i) => ({ customer: (i * 31) % customers, amount: (i % 97) + 1 })));
    return sales
      .join(people, (o) => o.customer, (c) => c.id)
      .reduceByKey(([, c]) => c.country, ([o]): [number, number] => [1, o.amount], (a, b): [number, number] => [a[0] + b[0], a[1] + b[1]])
      .exchange(() => 0)
      .collect();
  });
  return allocator.index === 0 ? totals : undefined;
});
// In a cluster (weft launch), the process holding worker 0 prints the answer.
const byCountry = (await guards.join()).find((t) => t !== undefined);
if (byCountry === undefined) process.exit(0);
const pairs = byCountry.reduce((n, [, [count]]) => n + count, 0);
const revenue = byCountry.reduce((n, [, [, r]]) => n + r, 0);
const top = byCountry.sort((a, b) => b[1][1] - a[1][1] || (a[0] < b[0] ? -1 : 1))[0];
console.log(JSON.stringify({ pairs, revenue, topCountry: top === undefined ? null : [top[0], top[1][1]] }));
