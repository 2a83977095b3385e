// The entry of each worker thread of `Runtime.inMemory`: the host is the
// hosted pool's last index, and sends the hello naming the operations.

import type { Allocator } from '../../../allocator/index.ts';
import { serveTasks } from '../../channel-protocol/worker-loop.ts';

export function serveThread(allocator: Allocator): Promise<void> {
  return serveTasks(allocator, allocator.peers - 1);
}
