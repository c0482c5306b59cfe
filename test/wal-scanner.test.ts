/**
 * The WAL scanner against pg_waldump on real WAL from PostgreSQL 15 (1 MiB and 16 MiB segments):
 * small and huge records (bigger than a segment), subtransactions, two-phase commit, aborts,
 * compressed full-page images, restore points, switches, checkpoints, a promotion to timeline 2
 * (END_OF_RECOVERY), a live segment with a recycled stale tail, and a flipped byte.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgCluster, pgBinDir, userTempDir, writeUserFile, confString } from './helpers/pg.js';
import { completeSpanningRecord, applySpan, ScanResult, HeadCont, pgTimeToIso } from '../src/wal/scanner.js';
import { scanSegment } from './helpers/scan-both.js';
import { parseWalFileName, segNoFromLogSeg, parseLsn, formatLsn } from '../src/wal/names.js';

const MB = 1024 * 1024;

interface DumpRecord {
  rmgr: string;
  tot: number;
  xid: number;
  lsn: number;
  prev: number;
  desc: string;
}

/** pg_waldump over the given files (consecutive, one timeline); stops quietly at the end of valid WAL. */
function waldump(dir: string, first: string, last: string): DumpRecord[] {
  const r = spawnSync(join(pgBinDir(), 'pg_waldump'), ['-p', dir, first, last], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' }, maxBuffer: 1 << 30 });
  const re = /^rmgr: (\S+)\s+len \(rec\/tot\):\s+\d+\/\s*(\d+), tx:\s+(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+), prev ([0-9A-F]+\/[0-9A-F]+), desc: (.*)$/;
  const out: DumpRecord[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = re.exec(line);
    if (m) out.push({ rmgr: m[1]!, tot: Number(m[2]), xid: Number(m[3]), lsn: parseLsn(m[4]!)!, prev: parseLsn(m[5]!)!, desc: m[6]! });
  }
  if (out.length === 0) throw new Error(`pg_waldump printed nothing: ${r.stderr}`);
  return out;
}

interface Seg {
  name: string;
  startLsn: number;
  buf: Buffer;
}

function loadSegments(dir: string, segSize: number, tli: number): Seg[] {
  return readdirSync(dir)
    .map((n) => parseWalFileName(n))
    .filter((f) => f !== null && f.kind === 'segment' && f.timeline === tli)
    .map((f) => ({ name: f!.name, startLsn: segNoFromLogSeg(f!.logSeg!, segSize) * segSize, buf: readFileSync(join(dir, f!.name)) }))
    .sort((a, b) => a.startLsn - b.startLsn);
}

interface Scanned {
  results: ScanResult[];
  /** Every record attributed to a segment: [lsn, totLen, xid], in LSN order. */
  records: [number, number, number][];
}

/** In order, carrying each tail into the next scan. */
function scanInOrder(segs: Seg[], segSize: number): Scanned {
  const results: ScanResult[] = [];
  const records: [number, number, number][] = [];
  let carry = null;
  let owner = -1;
  for (const s of segs) {
    const r = scanSegment(s.buf, {
      segSize,
      startLsn: s.startLsn,
      pgMajor: 15,
      carry,
      verifyBlocks: true,
      onRecord: (lsn, _end, tot, _rmid, _info, xid) => records.push([lsn, tot, xid]),
    });
    if (r.spanning?.status === 'complete') {
      results[owner] = applySpan(results[owner]!, r.spanning);
      records.push([r.spanning.lsn, r.spanning.totLen, r.spanning.xid]);
    }
    results.push(r);
    if (r.tailCont !== null && r.tailCont.lsn >= s.startLsn) owner = results.length - 1;
    carry = r.tailCont;
  }
  records.sort((a, b) => a[0] - b[0]);
  return { results, records };
}

/** Newest first, each alone, then spanning records joined from the stored (JSON) pieces. */
function scanBackwards(segs: Seg[], segSize: number): ScanResult[] {
  const res: ScanResult[] = [];
  for (let i = segs.length - 1; i >= 0; i--) {
    const r = scanSegment(segs[i]!.buf, { segSize, startLsn: segs[i]!.startLsn, pgMajor: 15 });
    res[i] = JSON.parse(JSON.stringify(r)) as ScanResult;
    const t = res[i]!.tailCont;
    if (t === null) continue;
    const heads: (HeadCont | null)[] = [];
    for (let j = i + 1; j < segs.length; j++) {
      heads.push(res[j]!.headCont);
      if (res[j]!.headCont === null || res[j]!.headCont!.ends) break;
    }
    const span = completeSpanningRecord(t, heads);
    if (span.status === 'needs-rescan') {
      const again = scanSegment(segs[i + 1]!.buf, { segSize, startLsn: segs[i + 1]!.startLsn, pgMajor: 15, carry: t });
      res[i] = applySpan(res[i]!, again.spanning!);
    } else res[i] = applySpan(res[i]!, span);
  }
  return res;
}

/** Transaction ends as pg_waldump shows them: [lsn, kind, xid, "YYYY-MM-DD HH:MM:SS.ffffff"]. */
function dumpXacts(d: DumpRecord[]): [number, string, number, string][] {
  const out: [number, string, number, string][] = [];
  for (const r of d) {
    if (r.rmgr !== 'Transaction') continue;
    const m = /^(COMMIT_PREPARED|ABORT_PREPARED|COMMIT|ABORT) (?:(\d+): )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC/.exec(r.desc);
    if (!m) continue;
    const frac = m[3]!.includes('.') ? m[3]! : `${m[3]}.`;
    out.push([r.lsn, m[1]!.toLowerCase(), m[2] ? Number(m[2]) : r.xid, frac.padEnd(26, '0')]);
  }
  return out;
}

function ourXacts(rs: ScanResult[]): [number, string, number, string][] {
  return rs.flatMap((r) => r.xacts.map((x) => [x.lsn, x.kind, x.xid, pgTimeToIso(x.time).replace('T', ' ').replace('Z', '')] as [number, string, number, string]));
}

function compareWithWaldump(segs: Seg[], segSize: number, dir: string) {
  const dump = waldump(dir, segs[0]!.name, segs[segs.length - 1]!.name);
  const inOrder = scanInOrder(segs, segSize);
  const back = scanBackwards(segs, segSize);
  for (const r of inOrder.results) expect(r.corruption, r.endDetail).toBeNull();
  // Every record: same LSN, length and xid, attributed once.
  expect(inOrder.records).toEqual(dump.map((d) => [d.lsn, d.tot, d.xid]));
  // Per segment, the records starting in it.
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    const n = dump.filter((d) => d.lsn >= s.startLsn && d.lsn < s.startLsn + segSize).length;
    expect(inOrder.results[i]!.records, s.name).toBe(n);
    expect(back[i]!.records, s.name).toBe(n);
  }
  // Transaction ends, restore points, checkpoints, switches, end of recovery: as pg_waldump says.
  const dx = dumpXacts(dump);
  expect(ourXacts(inOrder.results)).toEqual(dx);
  expect(ourXacts(back)).toEqual(dx);
  const rps = dump.filter((d) => d.rmgr === 'XLOG' && d.desc.startsWith('RESTORE_POINT')).map((d) => [d.lsn, d.desc.slice('RESTORE_POINT '.length)]);
  expect(inOrder.results.flatMap((r) => r.restorePoints.map((p) => [p.lsn, p.name]))).toEqual(rps);
  expect(back.flatMap((r) => r.restorePoints.map((p) => [p.lsn, p.name]))).toEqual(rps);
  const cps = dump
    .filter((d) => d.rmgr === 'XLOG' && d.desc.startsWith('CHECKPOINT_'))
    .map((d) => [d.lsn, parseLsn(/redo ([0-9A-F]+\/[0-9A-F]+)/.exec(d.desc)![1]!), d.desc.startsWith('CHECKPOINT_ONLINE')]);
  expect(inOrder.results.flatMap((r) => r.checkpoints.map((c) => [c.lsn, c.redo, c.online]))).toEqual(cps);
  const sws = dump.filter((d) => d.rmgr === 'XLOG' && d.desc.startsWith('SWITCH')).map((d) => d.lsn);
  expect(inOrder.results.flatMap((r) => r.switches.map((s) => s.lsn))).toEqual(sws);
  const eors = dump
    .filter((d) => d.rmgr === 'XLOG' && d.desc.startsWith('END_OF_RECOVERY'))
    .map((d) => {
      const m = /tli (\d+); prev tli (\d+); time (\S+ \S+) UTC/.exec(d.desc)!;
      return [d.lsn, Number(m[1]), Number(m[2]), m[3]!.padEnd(26, m[3]!.includes('.') ? '0' : '.').padEnd(26, '0')];
    });
  expect(
    inOrder.results.flatMap((r) => r.endOfRecovery.map((e) => [e.lsn, e.newTli, e.prevTli, pgTimeToIso(e.time).replace('T', ' ').replace('Z', '')])),
  ).toEqual(eors);
  // The two scan orders agree on everything they report.
  const strip = (r: ScanResult) => ({ ...r, headCont: null, tailCont: null, spanning: null });
  expect(back.map(strip)).toEqual(inOrder.results.map(strip));
  return { dump, inOrder, back };
}

/** Copies files out of a directory owned by the cluster user into a fresh one (a stable snapshot). */
function snapshotDir(src: string): string {
  const d = mkdtempSync(join(tmpdir(), 'walship-wal-snap-'));
  for (const f of readdirSync(src)) writeFileSync(join(d, f), readFileSync(join(src, f)));
  return d;
}

describe('WAL scanner vs pg_waldump on real PostgreSQL 15 WAL', () => {
  let a: PgCluster | undefined; // 1 MiB segments, the main workload
  let b: PgCluster | undefined; // promoted from a's backup: timeline 2
  let c: PgCluster | undefined; // 16 MiB segments
  let archA = '';
  let archB = '';
  let archC = '';
  let lastArchivedEnd = '';
  let liveSeg: { name: string; buf: Buffer; dir: string } | undefined;
  const cleanup: string[] = [];

  const common = {
    archive_mode: 'on',
    wal_compression: 'pglz',
    full_page_writes: 'on',
    max_prepared_transactions: 5,
    timezone: "'UTC'",
    log_timezone: "'UTC'",
    checkpoint_timeout: '1h',
  };

  async function workloadA(): Promise<void> {
    const base = userTempDir('wal-scan-a');
    archA = join(base, 'arch');
    a = await PgCluster.create({ baseDir: base, walSegSizeMb: 1, conf: { ...common, archive_command: confString(`mkdir -p ${archA} && cp %p ${archA}/%f`) } });
    await a.start();
    await a.sql(`
      CREATE TABLE t(id int, v text);
      INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
      CHECKPOINT;
      UPDATE t SET v = 'y' WHERE id % 40 = 0;                 -- full-page images, pglz
      ALTER SYSTEM SET wal_compression = 'lz4'; SELECT pg_reload_conf();
    `);
    await a.sql(`CHECKPOINT; UPDATE t SET v = 'z' WHERE id % 40 = 1;`); // lz4 images
    await a.sql(`ALTER SYSTEM SET wal_compression = 'zstd'; SELECT pg_reload_conf();`);
    await a.sql(`
      CHECKPOINT; UPDATE t SET v = 'w' WHERE id % 40 = 2;     -- zstd images
      BEGIN; INSERT INTO t VALUES (1, 'a'); SAVEPOINT s1; INSERT INTO t VALUES (2, 'b'); ROLLBACK TO s1;
        SAVEPOINT s2; INSERT INTO t VALUES (3, 'c'); RELEASE s2; COMMIT;
      BEGIN; INSERT INTO t VALUES (4, 'd'); ROLLBACK;
      BEGIN; INSERT INTO t VALUES (5, 'e'); SAVEPOINT s; INSERT INTO t VALUES (6, 'f'); PREPARE TRANSACTION 'p1';
      COMMIT PREPARED 'p1';
      BEGIN; CREATE TABLE gone(x int); INSERT INTO t VALUES (7, 'g'); PREPARE TRANSACTION 'p2';
      ROLLBACK PREPARED 'p2';
      SELECT pg_create_restore_point('rp1');
      SELECT pg_logical_emit_message(false, 'big', repeat('m', 2500000));   -- one record > 2 segments
      DO $$ BEGIN FOR i IN 1..400 LOOP INSERT INTO t VALUES (i, 'loop'); COMMIT; END LOOP; END $$;
      CREATE TABLE s(id int);
    `);
    // A commit record of ~80 kB (20k subtransactions), placed so that it crosses a segment boundary.
    await a.sql(`
      BEGIN;
      DO $$ BEGIN FOR i IN 1..20000 LOOP BEGIN INSERT INTO s VALUES (i); EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$;
      SELECT pg_logical_emit_message(false, 'pad', repeat('p',
        ((1048576 - 40000 - (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint % 1048576 + 1048576) % 1048576)::int + 1000));
      COMMIT;
      SELECT pg_create_restore_point('rp2');
      CHECKPOINT;
    `);
    await a.switchWal();
    await a.sql(`INSERT INTO t VALUES (8, 'h'); SELECT pg_create_restore_point('rp3');`);
    const [[switchLsn, last]] = (await a.sql('SELECT s, pg_walfile_name(s) FROM pg_switch_wal() s')) as [[string, string]];
    void switchLsn;
    await a.waitArchived(last);
    // The segment being written now, read from pg_wal while the server runs: its tail is stale
    // (recycled file) or zeros, like a .partial.
    await a.sql(`INSERT INTO t SELECT g, 'live' FROM generate_series(1, 300) g;`);
    const name = await a.value('SELECT pg_walfile_name(pg_current_wal_lsn())');
    const liveDir = mkdtempSync(join(tmpdir(), 'walship-wal-live-'));
    cleanup.push(liveDir);
    const buf = readFileSync(join(a.dataDir, 'pg_wal', name));
    writeFileSync(join(liveDir, name), buf);
    liveSeg = { name, buf, dir: liveDir };
  }

  async function promotionB(): Promise<void> {
    const base = userTempDir('wal-scan-b');
    archB = join(base, 'arch');
    const data = join(base, 'data');
    await a!.baseBackup(data);
    // After the backup, fill more than a segment without a switch: the last archived segment ends with a
    // record continuing into one that is not archived, so a standby restoring from the archive
    // ends recovery in the middle of a segment (timeline 2 starts with timeline 1's pages).
    await a!.sql(`INSERT INTO t SELECT g, repeat('f', 100) FROM generate_series(1, 9000) g;`);
    const prev = await a!.value(`SELECT pg_walfile_name(pg_current_wal_lsn() - ((pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint % 1048576) - 1)`);
    await a!.waitArchived(prev);
    const f = parseWalFileName(prev)!;
    const startLsn = segNoFromLogSeg(f.logSeg!, MB) * MB;
    const lastScan = scanSegment(readFileSync(join(archA, prev)), { segSize: MB, startLsn, pgMajor: 15 });
    expect(lastScan.tailCont).not.toBeNull();
    lastArchivedEnd = formatLsn(lastScan.endLsn);
    b = await PgCluster.create({
      baseDir: base,
      noInit: true,
      conf: {
        ...common,
        restore_command: confString(`cp ${archA}/%f %p`),
        archive_command: confString(`mkdir -p ${archB} && cp %p ${archB}/%f`),
      },
    });
    writeUserFile(join(data, 'standby.signal'), '');
    await b.start();
    // Replay everything archived so far, then promote: END_OF_RECOVERY on timeline 2.
    for (let i = 0; ; i++) {
      if ((await b.value(`SELECT pg_last_wal_replay_lsn() >= '${lastArchivedEnd}'`)) === 't') break;
      if (i > 600) throw new Error('the standby did not replay the archive');
      await new Promise((r) => setTimeout(r, 100));
    }
    await b.value('SELECT pg_promote(true, 60)');
    await b.waitPromoted();
    await b.sql(`
      CREATE TABLE after_promote(x int); INSERT INTO after_promote VALUES (1);
      SELECT pg_create_restore_point('tl2');
    `);
    const last = await b.switchWal();
    await b.waitArchived(last);
  }

  async function workloadC(): Promise<void> {
    const base = userTempDir('wal-scan-c');
    archC = join(base, 'arch');
    c = await PgCluster.create({ baseDir: base, conf: { ...common, archive_command: confString(`mkdir -p ${archC} && cp %p ${archC}/%f`) } });
    await c.start();
    await c.sql(`
      CREATE TABLE t(id int, v text);
      INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 30000) g;
      CHECKPOINT;
      UPDATE t SET v = 'u' WHERE id % 20 = 0;
      BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'c1'; COMMIT PREPARED 'c1';
      SELECT pg_create_restore_point('c-rp1');
      SELECT pg_logical_emit_message(false, 'huge', repeat('h', 36000000));  -- spans two or three 16 MiB boundaries
      BEGIN; INSERT INTO t VALUES (2); ROLLBACK;
      SELECT pg_create_restore_point('c-rp2');
    `);
    const last = await c.switchWal();
    await c.waitArchived(last);
  }

  beforeAll(async () => {
    await Promise.all([workloadA().then(promotionB), workloadC()]);
    archA = snapshotDir(archA);
    archB = snapshotDir(archB);
    archC = snapshotDir(archC);
    cleanup.push(archA, archB, archC);
  });

  afterAll(async () => {
    await Promise.all([a?.destroy(), b?.destroy(), c?.destroy()]);
    for (const d of cleanup) rmSync(d, { recursive: true, force: true });
  });

  it('1 MiB segments: every record, transaction end, restore point and checkpoint matches pg_waldump, in both scan orders', () => {
    const segs = loadSegments(archA, MB, 1);
    expect(segs.length).toBeGreaterThan(8);
    const { dump, inOrder } = compareWithWaldump(segs, MB, archA);
    const xacts = inOrder.results.flatMap((r) => r.xacts);
    const kinds = new Set(xacts.map((x) => x.kind));
    expect([...kinds].sort()).toEqual(['abort', 'abort_prepared', 'commit', 'commit_prepared']);
    expect(inOrder.results.flatMap((r) => r.restorePoints.map((p) => p.name))).toEqual(['rp1', 'rp2', 'rp3']);
    // The big message (> 2 segments) and the 80 kB commit crossed segment boundaries.
    const big = dump.find((d) => d.tot > 2 * MB)!;
    expect(big).toBeDefined();
    const bigCommit = dump.find((d) => d.rmgr === 'Transaction' && d.desc.startsWith('COMMIT') && d.tot > 50_000)!;
    expect(bigCommit).toBeDefined();
    expect(Math.floor(bigCommit.lsn / MB)).not.toBe(Math.floor((bigCommit.lsn + bigCommit.tot) / MB));
    const owner = inOrder.results.find((r) => r.startLsn <= bigCommit.lsn && bigCommit.lsn < r.startLsn + MB)!;
    expect(owner.xacts.filter((x) => x.lsn === bigCommit.lsn)).toHaveLength(1);
    // Every closed segment is complete; the summaries add up.
    for (const r of inOrder.results) expect(r.complete, r.endDetail).toBe(true);
    const commits = inOrder.results.reduce((n, r) => n + r.summary.commits, 0);
    const aborts = inOrder.results.reduce((n, r) => n + r.summary.aborts, 0);
    expect(commits + aborts).toBe(xacts.length);
    expect(aborts).toBe(xacts.filter((x) => x.kind.startsWith('abort')).length);
    // Stored pieces stay small.
    for (const r of inOrder.results) {
      expect(JSON.stringify(r.headCont ?? '').length).toBeLessThan(1000);
    }
    for (const r of scanBackwards(segs, MB)) expect(JSON.stringify(r.tailCont ?? '').length).toBeLessThan(1000);
  });

  it('timeline 2 after a promotion: END_OF_RECOVERY and the parent-timeline pages match pg_waldump', () => {
    const segs = loadSegments(archB, MB, 2);
    expect(segs.length).toBeGreaterThan(0);
    expect(readdirSync(archB)).toContain('00000002.history');
    const { inOrder } = compareWithWaldump(segs, MB, archB);
    const eor = inOrder.results.flatMap((r) => r.endOfRecovery);
    expect(eor).toHaveLength(1);
    expect(eor[0]).toMatchObject({ newTli: 2, prevTli: 1 });
    expect(inOrder.results[0]!.pageTli).toBe(1); // the first segment starts with timeline 1's pages
    expect(inOrder.results.flatMap((r) => r.restorePoints.map((p) => p.name))).toContain('tl2');
  });

  it('16 MiB segments: matches pg_waldump, including a 36 MB record', () => {
    const segs = loadSegments(archC, 16 * MB, 1);
    expect(segs.length).toBeGreaterThanOrEqual(3);
    const { dump } = compareWithWaldump(segs, 16 * MB, archC);
    expect(dump.some((d) => d.tot > 32 * MB)).toBe(true);
  });

  it('a live segment with a stale tail: the end of valid data is where pg_waldump stops, not corruption', () => {
    const seg = liveSeg!;
    const f = parseWalFileName(seg.name)!;
    const startLsn = segNoFromLogSeg(f.logSeg!, MB) * MB;
    const dump = waldump(seg.dir, seg.name, seg.name);
    const seen: number[] = [];
    const r = scanSegment(seg.buf, { segSize: MB, startLsn, pgMajor: 15, partial: true, onRecord: (lsn) => seen.push(lsn) });
    expect(r.corruption).toBeNull();
    expect(['zero', 'page-mismatch', 'prev-mismatch']).toContain(r.endReason);
    const firstOwn = r.firstRecordLsn!;
    expect(seen).toEqual(dump.filter((d) => d.lsn >= firstOwn).map((d) => d.lsn));
    const lastDump = dump[dump.length - 1]!;
    expect(r.lastRecordLsn).toBe(lastDump.lsn);
    expect(r.endLsn).toBeGreaterThan(lastDump.lsn);
    // Without partial mode too: a stale tail is not corruption.
    expect(scanSegment(seg.buf, { segSize: MB, startLsn, pgMajor: 15 }).corruption).toBeNull();
  });

  it('a flipped byte inside a real commit record is reported as corruption at that record', () => {
    const segs = loadSegments(archA, MB, 1);
    const inOrder = scanInOrder(segs, MB);
    const i = inOrder.results.findIndex((r) => r.xacts.some((x) => x.kind === 'commit' && x.endLsn < r.startLsn + MB - 8192));
    const r = inOrder.results[i]!;
    const victim = r.xacts.find((x) => x.kind === 'commit' && x.endLsn < r.startLsn + MB - 8192)!;
    const buf = Buffer.from(segs[i]!.buf);
    buf[victim.lsn - r.startLsn + 24 + 2 + 3]! ^= 0x01; // inside xact_time
    const bad = scanSegment(buf, { segSize: MB, startLsn: r.startLsn, pgMajor: 15 });
    expect(bad.corruption).toEqual({ lsn: victim.lsn, reason: expect.stringMatching(/CRC/) });
    expect(bad.xacts.every((x) => x.lsn < victim.lsn)).toBe(true);
    // pg_waldump agrees that the record is bad.
    const dir = mkdtempSync(join(tmpdir(), 'walship-wal-flip-'));
    try {
      writeFileSync(join(dir, segs[i]!.name), buf);
      const out = spawnSync(join(pgBinDir(), 'pg_waldump'), ['-p', dir, segs[i]!.name], { encoding: 'utf8' });
      expect(out.stderr).toMatch(/incorrect resource manager data checksum/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
