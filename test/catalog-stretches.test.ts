/**
 * wal_seg_stretches (catalog migration 4): the triggers keep it equal to what the files and
 * scans say, whatever the order of inserts, gap fills, deletes and updates, on several
 * timelines and across STRETCH_BLOCK boundaries; the migration builds it for an existing
 * catalog. The expected stretches come from segmentSourceFromList (the planner's in-memory
 * source) over the rows themselves.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Catalog } from '../src/catalog/catalog.js';
import { MIGRATIONS, STRETCH_BLOCK } from '../src/catalog/schema.js';
import { segmentSourceFromList, type SegmentFacts, type SegmentStretch } from '../src/recovery/input.js';
import { segmentName } from '../src/wal/names.js';

const SEG = 16 * 1024 * 1024;
const B = STRETCH_BLOCK;

let dir: string;
let cat: Catalog;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'walship-stretches-'));
});
afterEach(() => {
  cat?.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(): Catalog {
  cat = Catalog.open(join(dir, 'c.db'))!;
  return cat;
}

const name = (tl: number, seg: number, kind: 'segment' | 'partial' = 'segment') => segmentName(tl, seg, SEG) + (kind === 'partial' ? '.partial' : '');

/** Archives a file as archive-push records it (an upsert). */
function addFile(db: Database.Database, tl: number, seg: number, kind: 'segment' | 'partial' = 'segment'): void {
  db.prepare(
    `INSERT INTO wal_files (name, kind, timeline, seg_no, start_lsn, end_lsn, raw_size, stored_size, sha256, compression, object_key, pushed_at)
     VALUES (@name, @kind, @tl, @seg, 0, 0, 0, 0, 'x', 'zstd', @name, 'now')
     ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, timeline = excluded.timeline, seg_no = excluded.seg_no, pushed_at = excluded.pushed_at`,
  ).run({ name: name(tl, seg, kind), kind, tl, seg });
}

/** Stores a scan of a file with `commits` transaction ends, the newest at `maxTime`. */
function addScan(db: Database.Database, tl: number, seg: number, commits: number, maxTime: number | null, kind: 'segment' | 'partial' = 'segment'): void {
  db.prepare(
    `INSERT INTO wal_scans (file, timeline, seg_no, partial, start_lsn, end_lsn, end_reason, records, commits, aborts, max_xact_time, scanned_at)
     VALUES (?, ?, ?, ?, 0, 0, 'end', 1, ?, 0, ?, 'now')`,
  ).run(name(tl, seg, kind), tl, seg, kind === 'partial' ? 1 : 0, commits, maxTime);
}

function stored(db: Database.Database): SegmentStretch[] {
  return db
    .prepare('SELECT timeline, first_seg AS firstSeg, last_seg AS lastSeg, unscanned, max_xact_time AS maxXactTime FROM wal_seg_stretches ORDER BY timeline, first_seg')
    .all() as SegmentStretch[];
}

/** The stretches the files and scans call for, computed apart from the catalog. */
function expected(db: Database.Database): readonly SegmentStretch[] {
  const rows = db
    .prepare(
      `SELECT f.name, f.timeline, f.seg_no, s.id AS scan_id, s.commits + s.aborts AS n, s.max_xact_time
         FROM wal_files f LEFT JOIN wal_scans s ON s.file = f.name WHERE f.kind = 'segment'`,
    )
    .all() as { name: string; timeline: number; seg_no: number; scan_id: number | null; n: number | null; max_xact_time: number | null }[];
  const facts: SegmentFacts[] = rows.map((r) => ({
    name: r.name,
    timeline: r.timeline,
    segNo: r.seg_no,
    scanned: r.scan_id !== null,
    lastRecordLsn: null,
    lastRecordEndLsn: null,
    xacts: r.n && r.max_xact_time !== null ? { count: r.n, firstTime: r.max_xact_time, lastTime: r.max_xact_time, minTime: r.max_xact_time, maxTime: r.max_xact_time } : null,
  }));
  return segmentSourceFromList(facts, B).stretches();
}

const st = (timeline: number, firstSeg: number, lastSeg: number, unscanned: number, maxXactTime: number | null): SegmentStretch => ({ timeline, firstSeg, lastSeg, unscanned, maxXactTime });

describe('wal_seg_stretches', () => {
  it('joins segments archived out of order, and a gap filled later merges two stretches', () => {
    const db = open().db;
    for (const s of [5, 3, 4, 10, 1]) addFile(db, 1, s);
    expect(stored(db)).toEqual([st(1, 1, 1, 1, null), st(1, 3, 5, 3, null), st(1, 10, 10, 1, null)]);
    addFile(db, 1, 2);
    expect(stored(db)).toEqual([st(1, 1, 5, 5, null), st(1, 10, 10, 1, null)]);
    for (const s of [9, 7, 8]) addFile(db, 1, s);
    addFile(db, 1, 6); // fills the last gap: one stretch
    expect(stored(db)).toEqual([st(1, 1, 10, 10, null)]);
    addFile(db, 1, 6); // a re-push changes nothing
    expect(stored(db)).toEqual([st(1, 1, 10, 10, null)]);
  });

  it('counts scans and keeps the newest transaction time as scans arrive, change and go', () => {
    const db = open().db;
    for (let s = 1; s <= 4; s++) addFile(db, 1, s);
    addScan(db, 1, 2, 3, 200);
    addScan(db, 1, 3, 0, null); // scanned, no transaction
    addScan(db, 1, 4, 1, 100);
    expect(stored(db)).toEqual([st(1, 1, 4, 1, 200)]);
    // A record spanning two files joins file 4 (resummarize): newer, then a correction down.
    db.prepare('UPDATE wal_scans SET commits = 2, max_xact_time = 300 WHERE file = ?').run(name(1, 4));
    expect(stored(db)).toEqual([st(1, 1, 4, 1, 300)]);
    db.prepare('UPDATE wal_scans SET max_xact_time = 150 WHERE file = ?').run(name(1, 4));
    expect(stored(db)).toEqual([st(1, 1, 4, 1, 200)]);
    db.prepare('DELETE FROM wal_scans WHERE file = ?').run(name(1, 2));
    expect(stored(db)).toEqual([st(1, 1, 4, 2, 150)]);
  });

  it('splits and shrinks on deletes, and forgets a segment with its scan', () => {
    const db = open().db;
    for (let s = 1; s <= 9; s++) {
      addFile(db, 1, s);
      addScan(db, 1, s, 1, s * 10);
    }
    db.prepare('DELETE FROM wal_files WHERE name = ?').run(name(1, 5));
    expect(stored(db)).toEqual([st(1, 1, 4, 0, 40), st(1, 6, 9, 0, 90)]);
    db.prepare('DELETE FROM wal_files WHERE name IN (?, ?)').run(name(1, 9), name(1, 1));
    expect(stored(db)).toEqual([st(1, 2, 4, 0, 40), st(1, 6, 8, 0, 80)]);
    addFile(db, 1, 5); // back, unscanned
    expect(stored(db)).toEqual([st(1, 2, 8, 1, 80)]);
    db.exec('DELETE FROM wal_files');
    expect(stored(db)).toEqual([]);
  });

  it(`keeps timelines apart, ignores .partial and history files, and cuts at every ${B}th segment`, () => {
    const db = open().db;
    for (let s = B - 3; s <= B + 2; s++) addFile(db, 1, s);
    for (const s of [B, B - 1]) addFile(db, 2, s); // B - 1 last: it must not join B
    addFile(db, 1, B + 3, 'partial');
    addScan(db, 1, B + 3, 5, 999, 'partial');
    db.prepare(`INSERT INTO wal_files (name, kind, timeline, seg_no, raw_size, stored_size, sha256, compression, object_key, pushed_at)
                VALUES ('00000002.history', 'history', 2, NULL, 0, 0, 'x', 'zstd', 'h', 'now')`).run();
    expect(stored(db)).toEqual([st(1, B - 3, B - 1, 3, null), st(1, B, B + 2, 3, null), st(2, B - 1, B - 1, 1, null), st(2, B, B, 1, null)]);
    // A file row whose kind or number changes (no writer does this; the catalog still follows).
    db.prepare("UPDATE wal_files SET kind = 'partial' WHERE name = ?").run(name(1, B));
    expect(stored(db)).toEqual(expected(db));
    expect(stored(db)).toEqual([st(1, B - 3, B - 1, 3, null), st(1, B + 1, B + 2, 2, null), st(2, B - 1, B - 1, 1, null), st(2, B, B, 1, null)]);
  });

  it('stays equal to the files and scans through random inserts, deletes and updates', () => {
    const db = open().db;
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648) >>> 16) % n;
    const done = [0, 0, 0, 0, 0];
    const segs = () => db.prepare("SELECT timeline, seg_no FROM wal_files WHERE kind = 'segment'").raw().all() as [number, number][];
    for (let step = 0; step < 600; step++) {
      const tl = 1 + rnd(2);
      const seg = B - 20 + rnd(40);
      const op = rnd(10);
      const has = (db.prepare('SELECT 1 FROM wal_files WHERE name = ?').get(name(tl, seg)) as unknown) !== undefined;
      const scanned = (db.prepare('SELECT 1 FROM wal_scans WHERE file = ?').get(name(tl, seg)) as unknown) !== undefined;
      if (op < 5 && !has) {
        addFile(db, tl, seg);
        done[0]++;
      } else if (op < 7 && has && !scanned) {
        addScan(db, tl, seg, rnd(3), rnd(3) === 0 ? null : rnd(1000));
        done[1]++;
      } else if (op === 7 && scanned) {
        db.prepare('UPDATE wal_scans SET commits = ?, max_xact_time = ? WHERE file = ?').run(rnd(3), rnd(1000), name(tl, seg));
        done[2]++;
      } else if (op === 8 && scanned) {
        db.prepare('DELETE FROM wal_scans WHERE file = ?').run(name(tl, seg));
        done[3]++;
      } else if (op === 9 && segs().length > 0) {
        const [t, s] = segs()[rnd(segs().length)]!;
        db.prepare('DELETE FROM wal_files WHERE name = ?').run(name(t, s));
        done[4]++;
      }
      expect(stored(db), `step ${step}`).toEqual(expected(db));
    }
    expect(Math.min(...done), `inserts, scans, scan updates, scan deletes, file deletes: ${done}`).toBeGreaterThan(15);
    expect(segs().length).toBeGreaterThan(20);
  });
});

describe('migration 4', () => {
  it('builds the stretches of an existing catalog, and the triggers keep them from then on', () => {
    const path = join(dir, 'c.db');
    const old = new Database(path);
    for (const m of MIGRATIONS.slice(0, 3)) old.exec(m);
    old.pragma('user_version = 3');
    for (const s of [1, 2, 3, 5, 6, B - 1, B, B + 1]) addFile(old, 1, s);
    for (const s of [3, 4, 5]) addFile(old, 2, s);
    addFile(old, 2, 6, 'partial');
    addScan(old, 1, 2, 4, 500);
    addScan(old, 1, 3, 0, null);
    addScan(old, 1, B, 1, 700);
    addScan(old, 2, 4, 2, 600);
    addScan(old, 2, 6, 9, 900, 'partial');
    old.close();

    const db = open().db;
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(stored(db)).toEqual([
      st(1, 1, 3, 1, 500),
      st(1, 5, 6, 2, null),
      st(1, B - 1, B - 1, 1, null),
      st(1, B, B + 1, 1, 700),
      st(2, 3, 5, 2, 600),
    ]);
    addFile(db, 1, 4);
    addScan(db, 1, 4, 1, 800);
    expect(stored(db).slice(0, 2)).toEqual([st(1, 1, 6, 3, 800), st(1, B - 1, B - 1, 1, null)]);
    expect(stored(db)).toEqual(expected(db));
  });
});

describe('migration 5', () => {
  it('adds body_sha256: null for the files indexed before, written for the files pushed after', () => {
    const old = new Database(join(dir, 'c.db'));
    for (const m of MIGRATIONS.slice(0, 4)) old.exec(m);
    old.pragma('user_version = 4');
    addFile(old, 1, 1);
    old.close();

    const c = open();
    expect(c.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(c.walFile(name(1, 1))!.body_sha256).toBeNull();
    c.upsertWalFile({ ...c.walFile(name(1, 1))!, name: name(1, 2), seg_no: 2, body_sha256: 'b'.repeat(64) });
    expect(c.walFile(name(1, 2))!.body_sha256).toBe('b'.repeat(64));
  });
});
