// amqplib, the AMQP client, is an optional peer dependency of weft: only
// the AMQP backend and `weft worker` load it, through this module (the rest
// of the folder imports its types only), so that importing this backend
// without amqplib installed fails at once with an error naming it.

import { importOptional } from '../../../../optional.ts';

export const { connect } = await importOptional('amqplib', 'the AMQP backend (Runtime.amqp, WorkerRuntime.amqp, weft worker)', () => import('amqplib'));
