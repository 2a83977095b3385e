import { ConfigError } from '../errors.ts';

/** Splits `host:port` (IPv6 hosts in brackets); a clear error otherwise. */
export function parseAddress(address: string): { host: string; port: number } {
  const m = typeof address === 'string' ? /^(.+):(\d+)$/.exec(address) : null;
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new ConfigError(`address ${JSON.stringify(address)} is not host:port`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}
