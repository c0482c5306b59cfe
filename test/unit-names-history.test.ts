import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn, parseWalFileName, segNoFromLogSeg, segmentName, logSegValidFor } from '../src/wal/names.js';
import { parseBackupHistoryFile, parseHistoryFile, pgTimestampToIso } from '../src/wal/history.js';

describe('WAL file names', () => {
  it('classifies every kind PostgreSQL archives and nothing else', () => {
    expect(parseWalFileName('000000010000000000000003')).toMatchObject({ kind: 'segment', timeline: 1, logSeg: '0000000000000003' });
    expect(parseWalFileName('0000000200000001000000FF.partial')).toMatchObject({ kind: 'partial', timeline: 2 });
    expect(parseWalFileName('0000000A.history')).toMatchObject({ kind: 'history', timeline: 10 });
    expect(parseWalFileName('000000010000000000000003.00000028.backup')).toMatchObject({ kind: 'backup', backupOffset: 0x28 });
    for (const bad of ['00000001000000000000003', '000000010000000000000003.gz', 'RECOVERYXLOG', '0000000g0000000000000003', '000000010000000000000003.history', '']) {
      expect(parseWalFileName(bad)).toBeNull();
    }
  });

  it('maps segment numbers and names for any segment size', () => {
    const mb16 = 16 * 1024 * 1024;
    expect(segNoFromLogSeg('00000001000000FF', mb16)).toBe(256 + 255);
    expect(segmentName(1, 511, mb16)).toBe('0000000100000001000000FF');
    const gb1 = 1024 * 1024 * 1024;
    expect(segmentName(3, 5, gb1)).toBe('000000030000000100000001');
    expect(logSegValidFor('0000000000000004', gb1)).toBe(false);
    expect(logSegValidFor('0000000000000003', gb1)).toBe(true);
    expect(segmentName(1, 4096 + 7, 1024 * 1024)).toBe('000000010000000100000007');
  });

  it('parses and formats LSNs', () => {
    expect(parseLsn('0/2016038')).toBe(0x2016038);
    expect(parseLsn('1A/00000010')).toBe(0x1a * 2 ** 32 + 0x10);
    expect(parseLsn('nope')).toBeNull();
    expect(formatLsn(0x1a * 2 ** 32 + 0x10)).toBe('1A/10');
    expect(formatLsn(0)).toBe('0/0');
  });
});

describe('history files', () => {
  it('parses timeline history files, ignoring comments', () => {
    const text = '# comment\n1\t0/6000198\tat restore point "rp2"\n\n2\t1/A0\tno recovery target specified\n';
    expect(parseHistoryFile(text)).toEqual([
      { parent: 1, switchpoint: 0x6000198, reason: 'at restore point "rp2"' },
      { parent: 2, switchpoint: 2 ** 32 + 0xa0, reason: 'no recovery target specified' },
    ]);
    expect(parseHistoryFile('1\tgarbage\n')).toBeNull();
    expect(parseHistoryFile('2\t0/1\tx\n1\t0/2\ty\n')).toBeNull();
  });

  it('parses backup history files from PostgreSQL 13-18', () => {
    const text = [
      'START WAL LOCATION: 0/3000028 (file 000000010000000000000003)',
      'STOP WAL LOCATION: 0/30001E8 (file 000000010000000000000003)',
      'CHECKPOINT LOCATION: 0/3000060',
      'BACKUP METHOD: streamed',
      'BACKUP FROM: master',
      'START TIME: 2026-11-24 11:08:25 UTC',
      'LABEL: lbl: with colon',
      'START TIMELINE: 1',
      'STOP TIME: 2026-11-24 11:08:26 CET',
      'STOP TIMELINE: 1',
      '',
    ].join('\n');
    const b = parseBackupHistoryFile(text)!;
    expect(b).toMatchObject({ startLsn: 0x3000028, stopLsn: 0x30001e8, checkpointLsn: 0x3000060, label: 'lbl: with colon', startTimeline: 1, stopTimeline: 1 });
    expect(b.startTime).toBe('2026-11-24T11:08:25.000Z');
    // A zone abbreviation is not guessed.
    expect(b.stopTime).toBeNull();
    expect(b.stopTimeText).toBe('2026-11-24 11:08:26 CET');
    expect(parseBackupHistoryFile('LABEL: x\n')).toBeNull();
  });

  it('converts only unambiguous timestamps', () => {
    expect(pgTimestampToIso('2026-01-02 03:04:05 GMT')).toBe('2026-01-02T03:04:05.000Z');
    expect(pgTimestampToIso('2026-01-02 03:04:05+02')).toBe('2026-01-02T01:04:05.000Z');
    expect(pgTimestampToIso('2026-01-02 03:04:05 PST')).toBeNull();
  });
});
