import { describe, expect, it } from 'vitest';
import { formatIso, formatPgTimestamp, parseTargetTime, pgTimeToMicros } from '../src/time.js';

const us = (text: string) => {
  const r = parseTargetTime(text);
  if (!('micros' in r)) throw new Error(r.error);
  return r.micros;
};

describe('target time parsing', () => {
  it('accepts ISO 8601 with every offset form and keeps microseconds', () => {
    const z = Date.UTC(2026, 10, 24, 11, 8, 25) * 1000;
    expect(us('2026-11-24T11:08:25Z')).toBe(z);
    expect(us('2026-11-24 11:08:25z')).toBe(z);
    expect(us('2026-11-24T12:08:25+01:00')).toBe(z);
    expect(us('2026-11-24T12:08:25+0100')).toBe(z);
    expect(us('2026-11-24T12:08:25+01')).toBe(z);
    expect(us('2026-11-24T05:38:25-05:30')).toBe(z);
    expect(us('2026-11-24 11:08:25 UTC')).toBe(z);
    expect(us('2026-11-24T11:08Z')).toBe(z - 25_000_000);
    expect(us('2026-11-24T11:08:25.934673Z')).toBe(z + 934_673);
    expect(us('2026-11-24T11:08:25.5Z')).toBe(z + 500_000);
    expect(us('2026-11-24T11:08:25,25Z')).toBe(z + 250_000);
  });

  it('refuses a time without an offset instead of guessing a zone', () => {
    const r = parseTargetTime('2026-11-24 11:08:25');
    expect('error' in r && r.error).toMatch(/no UTC offset/);
  });

  it('refuses malformed and impossible times', () => {
    for (const bad of ['yesterday', '2026-02-30T00:00:00Z', '2026-11-24T24:00:00Z', '2026-11-24T11:60:00Z', '2026-11-24T11:08:25.1234567Z', '2026-11-24T11:08:25+16:00']) {
      expect('error' in parseTargetTime(bad), bad).toBe(true);
    }
  });

  it('formats microseconds as ISO and as an unambiguous PostgreSQL timestamptz', () => {
    const t = us('2026-11-24T11:08:25.934673Z');
    expect(formatIso(t)).toBe('2026-11-24T11:08:25.934673Z');
    expect(formatPgTimestamp(t)).toBe('2026-11-24 11:08:25.934673+00');
    expect(formatIso(us('2026-11-24T11:08:25Z'))).toBe('2026-11-24T11:08:25Z');
    expect(formatIso(us('2026-11-24T11:08:25.000100Z'))).toBe('2026-11-24T11:08:25.000100Z');
    expect(formatIso(us('1969-12-31T23:59:59.5Z'))).toBe('1969-12-31T23:59:59.500000Z');
  });

  it("converts PostgreSQL's xact_time epoch (the reference test vector)", () => {
    expect(formatIso(pgTimeToMicros(848833705934673n))).toBe('2026-11-24T11:08:25.934673Z');
  });
});
