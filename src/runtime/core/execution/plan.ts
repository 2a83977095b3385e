// What a directive is given to run: its plan of operations and its options.

import type { Monoid, Operation } from '../registry.ts';
import type { RetryPolicy } from '../retry.ts';
import type { Progress } from './progress.ts';
import type { MetricsRecorder } from '../../observability/metrics.ts';
import type { DirectiveMessage } from '../../observability/channels.ts';

export interface ExecutionOptions {
  signal?: AbortSignal | undefined;
  retry: RetryPolicy;
  /** A task without a result after this long is treated as a transient failure. */
  timeoutMs?: number | undefined;
  /** Most input items between pulled and finished (or, streamed, taken) at once. */
  maxInFlight: number;
  onProgress?: ((progress: Readonly<Progress>) => void) | undefined;
  /** How long a cancelled task has to return before it is stopped by force; default: the backend's. */
  cancelGraceMs?: number | undefined;
  /** The runtime's metrics, which this directive's results count in. */
  metrics: MetricsRecorder;
  /** The `weft:directive` message, when someone subscribes: its task count, and the trace context the tasks carry. */
  trace?: DirectiveMessage | undefined;
}

export interface Plan {
  readonly stages: readonly Operation[];
  readonly fold?: Monoid | undefined;
}
