// The transport layer's index for the allocator: the in-process fabric
// (rings, their wiring, the control block and doorbells, frames, the
// per-peer inbox and outbox) and the checks a config makes of addresses
// and TLS files. The sockets of a cluster are in network.ts, which only
// a cluster's start imports, on demand: a program of threads in one
// process never loads them.
export { buildClusterFabric, buildFabric, relink, type RingEnd, type Wiring } from './wiring.ts';
export { RingReader, RingWriter, checkRingBytes, maxPayload } from './ring.ts';
export { SlabReader, SlabWriter, MAX_SLAB_BYTES, type Chunk } from './slab.ts';
export { Control } from './control.ts';
export { Doorbell } from './doorbell.ts';
export { Kind } from './frame.ts';
export { Inbox, type FrameSink } from './inbox.ts';
export { Outbox, type Backlog } from './outbox.ts';
export { concat } from './parts.ts';
export { parseAddress } from './address.ts';
export { checkTls, tlsFromDir, type TlsFiles } from './certificates.ts';
export { linkStats, type LinkStats } from './link-counters.ts';
