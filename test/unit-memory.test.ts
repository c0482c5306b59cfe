/** memory.ts: what a file in flight holds, and how many fit in memory_max. */
import { describe, expect, it } from 'vitest';
import { RUNTIME, fetchCost, filesInFlight, pushCost } from '../src/archive/memory.js';
import { parseSize } from '../src/config.js';

const MiB = 1024 * 1024;

describe('memory_max', () => {
  it('costs a file read whole by its size, and one read in pieces by its pieces whatever its size', () => {
    expect(pushCost(16 * MiB, false)).toBeGreaterThan(32 * MiB);
    expect(pushCost(64 * MiB, false)).toBeLessThan(pushCost(16 * MiB, false));
    expect(pushCost(1024 * MiB, false)).toBe(pushCost(64 * MiB, false));
    expect(pushCost(1024 * MiB, true)).toBeGreaterThan(pushCost(1024 * MiB, false));
    expect(fetchCost(1024 * MiB)).toBe(fetchCost(16 * MiB));
    expect(fetchCost(1 * MiB)).toBeLessThan(fetchCost(16 * MiB));
  });

  it('lets as many files go as fit beside the runtime, at least one, at most those wanted', () => {
    const cost = pushCost(16 * MiB, false);
    expect(filesInFlight(parseSize('512MB')!, cost, 4)).toBe(4);
    expect(filesInFlight(RUNTIME + 2 * cost, cost, 4)).toBe(2);
    expect(filesInFlight(RUNTIME + cost - 1, cost, 4)).toBe(1);
    expect(filesInFlight(parseSize('192MB')!, cost, 4)).toBe(1);
    expect(filesInFlight(undefined, cost, 4)).toBe(4);
    expect(filesInFlight(undefined, cost, 0)).toBe(1);
  });
});
