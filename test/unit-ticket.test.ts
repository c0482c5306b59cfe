/**
 * The line files (key-values.ts) and the tickets' text (ticket.ts): what the compiled entries
 * compare must be exactly the inputs of the settings.
 */
import { describe, expect, it } from 'vitest';
import { formatKeyValues, parseKeyValues } from '../src/archive/key-values.js';
import { ticketText as fetchTicketText } from '../src/archive/ticket.js';
import { resolveConfig } from '../src/config.js';

describe('key=value line files', () => {
  it('round-trips repeated keys and values holding "="', () => {
    const text = formatKeyValues([
      ['flag', '--repo=/a=b'],
      ['flag', '--catalog=/c'],
      ['name', 'x'],
    ]);
    expect(text).toBe('flag=--repo=/a=b\nflag=--catalog=/c\nname=x\n');
    const kv = parseKeyValues(text);
    expect(kv.get('flag')).toEqual(['--repo=/a=b', '--catalog=/c']);
    expect(kv.get('name')).toEqual(['x']);
  });
  it('refuses a value the format cannot carry', () => {
    expect(() => formatKeyValues([['repo', '/a\nrepo=/b']])).toThrow(/newline/);
  });
});

describe('tickets', () => {
  const cfg = resolveConfig({ flags: { repo: '/r' }, configPath: '/dev/null', env: {} });
  const input = { cfg, flagArgs: ['--repo=/r', '--log-level=debug'], cwd: '/d', repo: 'file:///r', places: [['dest_dir', '/d/pg_wal']] as const };

  it('records the flags in order, every WALSHIP_* variable, the config file state and the places', () => {
    const text = fetchTicketText(input, { WALSHIP_B: '2', PATH: '/bin', WALSHIP_A: '1' })!;
    const kv = parseKeyValues(text);
    expect(text.startsWith('format=1\n')).toBe(true);
    expect(kv.get('flag')).toEqual(['--repo=/r', '--log-level=debug']);
    expect(kv.get('env')).toEqual(['WALSHIP_A=1', 'WALSHIP_B=2']);
    expect(kv.get('config')).toEqual(['/dev/null']);
    // /dev/null is there: its device, inode, size and times.
    expect(kv.get('config_state')![0]).toMatch(/^\d+ \d+ 0 \d+ \d+$/);
    expect(kv.get('cwd')).toEqual(['/d']);
    expect(kv.get('dest_dir')).toEqual(['/d/pg_wal']);
    expect(kv.get('repo')).toEqual(['file:///r']);
  });
  it('says "absent" for a default config file that is not there', () => {
    const noFile = resolveConfig({ flags: { repo: '/r' }, env: {} });
    if (noFile.configFile === undefined) expect(noFile.configStamp.state).toBe('absent');
  });
  it('is not written when a value holds a newline', () => {
    expect(fetchTicketText({ ...input, flagArgs: ['--repo=/r\n'] }, {})).toBeNull();
    expect(fetchTicketText(input, { WALSHIP_X: 'a\nb' })).toBeNull();
  });
});
