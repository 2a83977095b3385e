// How reconnection to the broker backs off: public (AmqpConnectOptions), so
// it lives apart from connection.ts, whose declarations name amqplib's types;
// the package's .d.ts must not reach those (amqplib's types are not shipped).

export interface BackoffOptions {
  /** First delay before reconnecting, in ms. Default 100. */
  initialMs?: number;
  /** Longest delay between attempts, in ms. Default 2000. */
  maxMs?: number;
}
