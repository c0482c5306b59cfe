import { WalshipError } from '../errors.js';

/** A command-line value that must be a whole number >= `min`; USAGE error naming the flag otherwise. */
export function wholeNumberFlag(name: string, value: unknown, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new WalshipError('USAGE', `--${name} must be a whole number >= ${min}, got '${String(value)}'`);
  return n;
}
