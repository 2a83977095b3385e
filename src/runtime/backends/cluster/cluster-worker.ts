// The entry of every worker of `Runtime.cluster`, in every process: global
// worker 0 is the gateway, the others serve tasks from it.

import type { Allocator } from '../../../allocator/index.ts';
import { ConfigError } from '../../../errors.ts';
import { CLUSTER_SETTINGS_ENV, type ClusterSettings } from './gateway-messages.ts';
import { runGateway } from './gateway.ts';
import { serveTasks } from '../../channel-protocol/worker-loop.ts';

export function serveCluster(allocator: Allocator): Promise<void> {
  const settings = JSON.parse(process.env[CLUSTER_SETTINGS_ENV] ?? 'null') as ClusterSettings | null;
  if (settings === null) throw new ConfigError(`${CLUSTER_SETTINGS_ENV} is not set: start cluster workers with Runtime.cluster`);
  return allocator.index === 0 ? runGateway(allocator, settings.channel) : serveTasks(allocator, 0, settings.operations);
}
