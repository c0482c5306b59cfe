/** The line files (key-values.ts) of the read-ahead records and the spool's metadata. */
import { describe, expect, it } from 'vitest';
import { formatKeyValues, parseKeyValues } from '../src/archive/key-values.js';

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
