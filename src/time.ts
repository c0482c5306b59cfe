/**
 * Times in the planner are integers: microseconds since 1970-01-01 00:00 UTC. That is
 * PostgreSQL's own precision (xact_time is microseconds since 2000-01-01) and stays exact in a
 * JavaScript number for the next 200 years.
 */

/** Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 00:00 UTC). */
export const PG_EPOCH_OFFSET_US = 946_684_800_000_000;

export function pgTimeToMicros(pgMicros: number | bigint): number {
  return Number(pgMicros) + PG_EPOCH_OFFSET_US;
}

export function msToMicros(ms: number): number {
  return Math.round(ms) * 1000;
}

export function isoToMicros(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const r = parseTargetTime(iso);
  return 'micros' in r ? r.micros : null;
}

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*([Zz]|[+-]\d{2}(?::?\d{2})?|UTC|GMT)?$/;

/**
 * Parses an ISO 8601 timestamp that carries its UTC offset (`Z`, `+hh`, `+hh:mm`, `+hhmm`; `UTC`
 * is accepted too). A time without an offset is refused: the planner never guesses a zone.
 */
export function parseTargetTime(text: string): { micros: number } | { error: string } {
  const m = ISO_RE.exec(text.trim());
  if (!m) {
    return { error: `"${text}" is not an ISO 8601 timestamp: write e.g. 2026-11-24T11:08:25.5+01:00 or 2026-11-24 10:08:25Z` };
  }
  const [, y, mo, d, h, mi, s = '00', frac = '', zone] = m;
  if (zone === undefined) {
    return { error: `"${text}" has no UTC offset: add Z or +hh:mm (walship does not guess the time zone)` };
  }
  if (frac.length > 6) return { error: `"${text}" has more than 6 fractional digits: PostgreSQL keeps microseconds` };
  const Y = Number(y), M = Number(mo), D = Number(d), H = Number(h), MI = Number(mi), S = Number(s);
  const ms = Date.UTC(Y, M - 1, D, H, MI, S);
  const back = new Date(ms);
  if (
    Number.isNaN(ms) ||
    back.getUTCFullYear() !== Y || back.getUTCMonth() !== M - 1 || back.getUTCDate() !== D ||
    back.getUTCHours() !== H || back.getUTCMinutes() !== MI || back.getUTCSeconds() !== S
  ) {
    return { error: `"${text}" is not a valid date and time` };
  }
  let offsetMin = 0;
  const z = zone.toUpperCase();
  if (z !== 'Z' && z !== 'UTC' && z !== 'GMT') {
    const sign = z.startsWith('-') ? -1 : 1;
    const digits = z.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 15 || om > 59) return { error: `"${text}" has an impossible UTC offset ${zone}` };
    offsetMin = sign * (oh * 60 + om);
  }
  const micros = (ms - offsetMin * 60_000) * 1000 + Number(frac.padEnd(6, '0') || '0');
  return { micros };
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

function parts(us: number): { date: string; time: string; frac: string } {
  const ms = Math.floor(us / 1000);
  const sub = us - Math.floor(us / 1_000_000) * 1_000_000; // microseconds within the second, >= 0
  const d = new Date(ms);
  return {
    date: `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`,
    time: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`,
    frac: sub === 0 ? '' : `.${pad(sub, 6)}`,
  };
}

/** `2026-11-24T11:08:25.934673Z` (fraction only when nonzero, always 6 digits then). */
export function formatIso(us: number): string {
  const p = parts(us);
  return `${p.date}T${p.time}${p.frac}Z`;
}

/** The same instant as PostgreSQL timestamptz input that no server time zone can misread. */
export function formatPgTimestamp(us: number): string {
  const p = parts(us);
  return `${p.date} ${p.time}${p.frac}+00`;
}

/** `2h 5m`, `3d 4h`, `12s`: a human duration for lags. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
