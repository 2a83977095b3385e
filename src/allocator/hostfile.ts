// The hostfile: one `host:port` per process, in process order; `#` starts a
// comment line. A line may end with the word `spare`: that process is a
// spare (Config.cluster `spares`), which the others do not wait for.

import { ConfigError } from '../errors.ts';

// Not `import from 'node:fs'`: Config imports this file, so every weft
// thread would build node:fs's ES module (fs.promises and all) for a file
// only a cluster reads.
const { readFileSync } = process.getBuiltinModule('node:fs');

export interface Hosts {
  addresses: string[];
  /** Indices of the lines marked spare. */
  spares: number[];
}

export function readHostfile(path: string): Hosts {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read hostfile ${path}: ${(cause as Error).message}`, { cause });
  }
  const hosts: Hosts = { addresses: [], spares: [] };
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#')) continue;
    const [address, mark, ...more] = line.split(/\s+/) as [string, ...string[]];
    if ((mark !== undefined && mark !== 'spare') || more.length > 0) {
      throw new ConfigError(`hostfile ${path}: ${JSON.stringify(line)} is not "host:port" or "host:port spare"`);
    }
    if (mark === 'spare') hosts.spares.push(hosts.addresses.length);
    hosts.addresses.push(address);
  }
  return hosts;
}
