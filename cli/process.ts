/** What every long-running `lattice` command shares: shutdown on a signal, port and log-level options. */
import { InvalidArgumentError } from 'commander';

/** Resolves on the first SIGINT or SIGTERM (Kubernetes stops pods with SIGTERM). */
export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** commander parser for a TCP port option. */
export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('must be a TCP port number (0-65535; 0 picks a free port)');
  return n;
}

/** pino's levels, for `--log-level` options. */
export const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
