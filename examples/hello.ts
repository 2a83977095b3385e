// timely's hello example: every worker says hello to every worker.
//   npm run demo              (2 workers)
//   npx tsx examples/hello.ts -w 4
import { Config, initialize } from '../src/index.ts';

const { config } = Config.fromArgs(process.argv.slice(2).length ? process.argv.slice(2) : ['-w', '2']);

const guards = await initialize(config, (allocator) => {
  const [senders, receiver] = allocator.allocate<string>(0);
  for (let i = 0; i < allocator.peers; i++) senders[i]!.send(`hello, ${i} (from ${allocator.index})`);
  allocator.release();
  let expecting = allocator.peers;
  while (expecting > 0) {
    allocator.receive();
    const message = receiver.recv();
    if (message !== undefined) {
      console.log(`worker ${allocator.index}: received <${message}>`);
      expecting--;
    } else {
      allocator.awaitEvents(100);
    }
  }
  return allocator.index;
});
console.log('result:', await guards.join());
