// The transport layer's second index: a cluster's sockets (the mesh of
// connections and the router of frames over them), imported on demand by
// the allocator's cluster start only (see index.ts).
export { connectMesh } from './mesh.ts';
export { Router } from './router.ts';
