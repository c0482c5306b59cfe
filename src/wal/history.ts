/**
 * Timeline history files (`<TLI>.history`) and backup history files (`*.backup`), pure parsers.
 * See docs/wal-format.md, "File names".
 */
import { parseLsn } from './names.js';

export interface HistoryEntry {
  /** The ancestor timeline. */
  parent: number;
  /** The LSN at which the next timeline branched off `parent`. */
  switchpoint: number;
  reason: string;
}

/** Parses a timeline history file; returns null when a line is malformed. */
export function parseHistoryFile(text: string): HistoryEntry[] | null {
  const entries: HistoryEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)\s*(.*)$/.exec(line);
    if (!m) return null;
    const switchpoint = parseLsn(m[2]!);
    const parent = Number(m[1]);
    if (switchpoint === null || !Number.isSafeInteger(parent)) return null;
    if (entries.length > 0 && parent <= entries[entries.length - 1]!.parent) return null;
    entries.push({ parent, switchpoint, reason: m[3]!.trim() });
  }
  return entries;
}

export interface BackupHistory {
  label: string;
  startLsn: number;
  stopLsn: number;
  checkpointLsn: number | null;
  startTimeline: number;
  stopTimeline: number;
  /** As PostgreSQL wrote them (log timezone abbreviation), and as ISO when the zone is UTC/GMT or numeric. */
  startTimeText: string;
  stopTimeText: string;
  startTime: string | null;
  stopTime: string | null;
  method: string | null;
  from: string | null;
}

/** Parses a backup history file (`*.backup`); returns null when a required field is missing. */
export function parseBackupHistoryFile(text: string): BackupHistory | null {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    fields.set(line.slice(0, i).trim().toUpperCase(), line.slice(i + 1).trim());
  }
  const lsnOf = (key: string): number | null => {
    const v = fields.get(key);
    if (v === undefined) return null;
    return parseLsn(v.split(/\s+/)[0] ?? '');
  };
  const startLsn = lsnOf('START WAL LOCATION');
  const stopLsn = lsnOf('STOP WAL LOCATION');
  if (startLsn === null || stopLsn === null) return null;
  const startTimeText = fields.get('START TIME') ?? '';
  const stopTimeText = fields.get('STOP TIME') ?? '';
  const tl = (key: string): number | null => {
    const v = fields.get(key);
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
  };
  const startTimeline = tl('START TIMELINE');
  const stopTimeline = tl('STOP TIMELINE') ?? startTimeline;
  if (startTimeline === null || stopTimeline === null) return null;
  return {
    label: fields.get('LABEL') ?? '',
    startLsn,
    stopLsn,
    checkpointLsn: lsnOf('CHECKPOINT LOCATION'),
    startTimeline,
    stopTimeline,
    startTimeText,
    stopTimeText,
    startTime: pgTimestampToIso(startTimeText),
    stopTime: pgTimestampToIso(stopTimeText),
    method: fields.get('BACKUP METHOD') ?? null,
    from: fields.get('BACKUP FROM') ?? null,
  };
}

/**
 * `2026-11-24 11:08:25 UTC` → ISO 8601. Only zones that name an offset unambiguously (UTC, GMT,
 * Z, +hh[:mm]) are converted; an abbreviation such as CET is kept as text, never guessed.
 */
export function pgTimestampToIso(text: string): string | null {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(UTC|GMT|Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(text.trim());
  if (!m || m[3] === undefined) return null;
  let zone = m[3];
  if (zone === 'UTC' || zone === 'GMT') zone = 'Z';
  else if (/^[+-]\d{2}$/.test(zone)) zone += ':00';
  else if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const d = new Date(`${m[1]}T${m[2]}${zone}`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
