// The synthetic repository the catalog and retention benchmarks share: made of walship's own
// objects (each segment's object carries a realistic scan, a body of a few bytes; index blocks as
// push writes them; walship backups as backup.json/started.json documents). Needs a built walship.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(ROOT, 'dist', p));
const { encodeObject, packScan } = await dist('archive/envelope.js');
const { BLOCK_SIZES, blockKey, entryFromMeta } = await dist('archive/index-blocks.js');
const { objectKeyFor } = await dist('archive/keys.js');
const { segmentName } = await dist('wal/names.js');

export const SEG = 16 * 1024 * 1024;
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);
const T0 = (Date.UTC(2026, 10, 1) - PG_EPOCH_MS) * 1000; // µs since 2000, as WAL carries them

/** A scan as the scanner returns it for a busy-enough segment `k` (timeline 1). */
function scanOf(k) {
  const start = k * SEG;
  const time = T0 + k * 30_000_000;
  const xacts = Array.from({ length: 200 }, (_, i) => ({ lsn: start + 40 + i * 80_000, endLsn: start + 80 + i * 80_000, xid: 1000 + k * 200 + i, kind: i % 25 === 24 ? 'abort' : 'commit', time: time + i * 150_000 }));
  return {
    startLsn: start,
    endLsn: start + SEG,
    endReason: 'segment-end',
    firstRecordLsn: start + 40,
    lastRecordLsn: start + SEG - 200,
    records: 1000,
    headCont: null,
    tailCont: null,
    xacts,
    restorePoints: k % 1000 === 500 ? [{ lsn: start + 100_000, endLsn: start + 100_104, name: `point-${k}`, time: time + 100 }] : [],
    checkpoints: k % 4 === 0 ? [{ lsn: start + 200_000, endLsn: start + 200_120, redo: start + 199_000, time: time + 1_000_000, online: true, tli: 1, prevTli: 1 }] : [],
    endOfRecovery: [],
    backupEnds: [],
    switches: [],
    overwrites: [],
  };
}

const isoOf = (pgMicros) => new Date(PG_EPOCH_MS + pgMicros / 1000).toISOString();
const lsnText = (n) => `${Math.floor(n / 2 ** 32).toString(16).toUpperCase()}/${(n % 2 ** 32).toString(16).toUpperCase()}`;

/** Every object of a repository of segments 1..n and walship backups starting in `backupSegs`, as [key, bytes], in batches. */
export async function* repositoryObjects(N, BACKUP_SEGS) {
  yield [['identity.json', Buffer.from(JSON.stringify({ format: 1, systemIdentifier: '7000000000000000001', pgMajor: 15, walSegmentSize: SEG, createdAt: new Date().toISOString(), createdBy: 'bench' }))]];
  const body = Buffer.alloc(64);
  let entries = new Map();
  for (let k = 1; k <= N; k += 500) {
    const batch = [];
    for (let s = k; s < Math.min(N + 1, k + 500); s++) {
      const name = segmentName(1, s, SEG);
      const scan = await packScan(scanOf(s));
      const { object, meta } = await encodeObject(
        body,
        { format: 1, name, sha256: 'a'.repeat(64), rawSize: SEG, compression: 'zstd', pushedAt: isoOf(T0 + s * 30_000_000), timeline: 1, systemIdentifier: '7000000000000000001', pgMajor: 15, segSize: SEG, startLsn: s * SEG, scan },
        1,
      );
      batch.push([objectKeyFor({ name, kind: 'segment', timeline: 1 }), object]);
      entries.set(s, entryFromMeta(meta, object.length));
      // The index blocks this segment completes, as push writes them.
      for (const count of BLOCK_SIZES) {
        const first = s - (s % count);
        if (s !== first + count - 1 || first === 0) continue;
        const lines = Buffer.from(Array.from({ length: count }, (_, i) => JSON.stringify(entries.get(first + i))).join('\n') + '\n');
        const key = blockKey(1, first, count, SEG);
        const { object: block } = await encodeObject(lines, { format: 1, name: key, sha256: 'b'.repeat(64), rawSize: lines.length, compression: 'zstd', pushedAt: new Date().toISOString(), timeline: 1 }, 3);
        batch.push([key, block]);
      }
      if (s % 256 === 255) entries = new Map([...entries].filter(([n]) => n > s));
    }
    yield batch;
  }
  const backups = [];
  for (const [i, s] of BACKUP_SEGS.entries()) {
    const id = `20261101T${String(i).padStart(2, '0')}0000Z-${String(1000 + i)}`;
    const start = s * SEG + 28;
    const summary = {
      format: 1, id, label: `nightly ${i}`, systemIdentifier: '7000000000000000001', pgVersion: '15.18', pgMajor: 15,
      startLsn: lsnText(start), stopLsn: lsnText(start + SEG), checkpointLsn: lsnText(start + 96), startTimeline: 1, stopTimeline: 1,
      startTime: isoOf(T0 + s * 30_000_000), stopTime: isoOf(T0 + (s + 1) * 30_000_000 + 1), startWal: segmentName(1, s, SEG), stopWal: segmentName(1, s + 1, SEG),
      files: 980, rawBytes: 23_000_000, storedBytes: 3_000_000, durationMs: 1500, chunks: ['chunk-000001.tar.zst'], backupLabel: '', tablespaceMap: null,
    };
    backups.push([`backups/${id}/started.json`, Buffer.from(JSON.stringify({ format: 1, id, label: summary.label, startLsn: summary.startLsn, startTimeline: 1, startTime: summary.startTime }))]);
    backups.push([`backups/${id}/backup.json`, Buffer.from(JSON.stringify(summary))]);
  }
  yield backups;
}

/** Writes the repository through `store(key, bytes)`, 16 at a time. */
export async function writeRepository(objects, store) {
  const t = Date.now();
  let n = 0;
  for await (const batch of objects) {
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < batch.length) {
          const [key, bytes] = batch[next++];
          await store(key, bytes);
          n++;
        }
      }),
    );
  }
  return { objects: n, secs: (Date.now() - t) / 1000 };
}


/**
 * A synthetic catalog of `m` segments of timeline 1 (one scan row each, one a minute apart from
 * 2026-01-01: a summary of 100 commits, or with `xactRows` one commit and its wal_xacts row), a
 * segment missing every `gapEvery`, and `backups` complete walship backups spread evenly; in
 * `dir`, with a repository that holds only its identity (so syncing first finds nothing new).
 * `walship(argv)` runs the CLI.
 */
export function syntheticCatalog(walship, dir, m, { gapEvery = null, backups = 0, xactRows = false } = {}) {
  const catPath = join(dir, 'synthetic.db');
  const repo = join(dir, 'repo');
  walship(['init', '--repo', repo, '--catalog', catPath]);
  const Database = createRequire(join(ROOT, 'package.json'))('better-sqlite3');
  const db = new Database(catPath);
  db.prepare("UPDATE repository SET system_identifier = '7000000000000000001', pg_major = 15, wal_segment_size = ?, created_at = ?").run(SEG, new Date().toISOString());
  const hex8 = (n) => n.toString(16).toUpperCase().padStart(8, '0');
  const f = db.prepare(
    `INSERT INTO wal_files (name, kind, timeline, seg_no, start_lsn, end_lsn, raw_size, stored_size, sha256, compression, object_key, pushed_at)
     VALUES (?, 'segment', 1, ?, ?, ?, ?, ?, ?, 'zstd', ?, ?)`,
  );
  const s = db.prepare(
    `INSERT INTO wal_scans (file, timeline, seg_no, partial, start_lsn, end_lsn, end_reason, first_record_lsn, last_record_lsn, records,
       commits, aborts, first_xact_time, last_xact_time, min_xact_time, max_xact_time, scanned_at)
     VALUES (?, 1, ?, 0, ?, ?, 'end', ?, ?, 1000, ${xactRows ? '1, 0' : '100, 1'}, ?, ?, ?, ?, ?)`,
  );
  const x = db.prepare('INSERT INTO wal_xacts (scan_id, lsn, end_lsn, xid, kind, xact_time) VALUES (?, ?, ?, ?, 0, ?)');
  const epoch = Date.UTC(2026, 0, 1) * 1000;
  const sum = 'a'.repeat(64);
  const insert = db.transaction((from, to) => {
    for (let i = from; i < to; i++) {
      const name = hex8(1) + hex8(Math.floor(i / 256)) + hex8(i % 256);
      const lsn = i * SEG;
      if (gapEvery && i % gapEvery === gapEvery - 1) continue;
      f.run(name, i, lsn, lsn + SEG, SEG, 1_400_000, sum, `wal/${name.slice(0, 16)}/${name}.zst`, '2026-01-01T00:00:00.000Z');
      const t = epoch + i * 60_000_000;
      if (xactRows) {
        const scan = s.run(name, i, lsn, lsn + SEG, lsn + 40, lsn + SEG - 100, t, t, t, t, '2026-01-01T00:00:00.000Z').lastInsertRowid;
        x.run(scan, lsn + 8000, lsn + 8040, 1000 + i, t);
      } else s.run(name, i, lsn, lsn + SEG, lsn + 40, lsn + SEG - 100, t, t + 59_000_000, t, t + 59_000_000, '2026-01-01T00:00:00.000Z');
    }
  });
  for (let i = 1; i < m + 1; i += 50_000) insert(i, Math.min(m + 1, i + 50_000));
  const b = db.prepare(
    `INSERT INTO backups (name, source, label, start_lsn, stop_lsn, start_timeline, stop_timeline, start_time, stop_time, status, stored_size)
     VALUES (?, 'walship', ?, ?, ?, 1, 1, ?, ?, 'complete', 3000000)`,
  );
  for (let k = 0; k < backups; k++) {
    const seg = 1 + Math.floor(((k + 0.5) * m) / backups);
    const at = (i) => new Date((epoch + i * 60_000_000) / 1000).toISOString();
    b.run(`2026${String(k).padStart(6, '0')}T000000Z-bench`, `nightly ${k}`, seg * SEG + 40, seg * SEG + 4000, at(seg), at(seg + 1));
  }
  db.close();
  writeFileSync(join(repo, 'identity.json'), JSON.stringify({ format: 1, systemIdentifier: '7000000000000000001', pgMajor: 15, walSegmentSize: SEG, createdAt: new Date().toISOString(), createdBy: 'bench' }));
  return { catPath, repo };
}
