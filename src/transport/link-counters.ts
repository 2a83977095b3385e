// A cluster process's counters per link (per peer process), in a small
// SharedArrayBuffer: the network thread writes them, the process's workers
// read them (allocator.stats().links) without a message crossing. One
// writer per cell, and a reader wants a recent value, not a consistent
// snapshot of several, so plain stores and loads suffice: an aligned
// 8-byte Float64 store is one instruction on the platforms Node runs on.
// Doubles, not Int32s: byte totals pass 2^32 in a long run.

/** Per link, in this order. */
const BYTES_OUT = 0;
const BYTES_IN = 1;
const RTT_MS = 2;
const RECONNECTS = 3;
const FIELDS = 4;

/** One link's counters, as this process saw them. */
export interface LinkStats {
  /** The peer process. */
  process: number;
  /** Bytes written to its socket and read from it (frames and heartbeats; not the handshake). */
  bytesOut: number;
  bytesIn: number;
  /** The last heartbeat's round trip, in milliseconds; -1 before the first one came back. */
  rttMs: number;
  /** How many times it connected again after it was lost (onPeerLoss 'continue'). */
  reconnects: number;
}

export function linkCountersBuffer(processes: number): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(8 * FIELDS * processes);
  const cells = new Float64Array(buffer);
  for (let p = 0; p < processes; p++) cells[p * FIELDS + RTT_MS] = -1;
  return buffer;
}

/** The network thread's side. */
export class LinkCounters {
  private readonly cells: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.cells = new Float64Array(buffer);
  }

  sent(process: number, bytes: number): void {
    this.cells[process * FIELDS + BYTES_OUT]! += bytes;
  }

  received(process: number, bytes: number): void {
    this.cells[process * FIELDS + BYTES_IN]! += bytes;
  }

  roundTrip(process: number, ms: number): void {
    this.cells[process * FIELDS + RTT_MS] = ms;
  }

  reconnected(process: number): void {
    this.cells[process * FIELDS + RECONNECTS]!++;
  }
}

/** The links of the process that wrote `buffer`, except `self`. */
export function linkStats(buffer: SharedArrayBuffer, self: number): LinkStats[] {
  const c = new Float64Array(buffer);
  const links: LinkStats[] = [];
  for (let process = 0, i = 0; i < c.length; process++, i += FIELDS) {
    if (process === self) continue;
    links.push({ process, bytesOut: c[i + BYTES_OUT]!, bytesIn: c[i + BYTES_IN]!, rttMs: c[i + RTT_MS]!, reconnects: c[i + RECONNECTS]! });
  }
  return links;
}
