/** The client-agent protocol (agent/protocol.ts) and what a call forwards (agent/place.ts). */
import { describe, expect, it } from 'vitest';
import { DECLINED, decodeRequest, encodeAnswer, encodeHello, encodeRequest } from '../src/agent/protocol.js';
import { agentDir, forwardedEnv } from '../src/agent/place.js';

describe('the client-agent protocol', () => {
  const req = { cwd: '/var/lib/postgresql/15/main', argv: ['archive-push', 'pg_wal/000000010000000000000003', '--repo=/r'], env: { WALSHIP_LOG_LEVEL: 'debug', HOME: '/home/é' } };

  it('round-trips a request, and waits for one that is incomplete', () => {
    const buf = encodeRequest(req);
    expect(decodeRequest(buf)).toEqual(req);
    for (const cut of [0, 3, 4, 10, buf.length - 1]) expect(decodeRequest(buf.subarray(0, cut))).toBeNull();
  });
  it('refuses what cannot be a request', () => {
    const n = Buffer.alloc(4);
    n.writeUInt32LE(1_000_000);
    expect(() => decodeRequest(n)).toThrow(/fields/);
    expect(() => decodeRequest(Buffer.alloc(2 << 20))).toThrow(/longer than/);
    const fields = (...f: string[]) => Buffer.concat([Buffer.from([f.length, 0, 0, 0]), ...f.map((x) => Buffer.concat([Buffer.from([x.length, 0, 0, 0]), Buffer.from(x)]))]);
    expect(() => decodeRequest(fields('/d', '5'))).toThrow(/argument count/);
    expect(() => decodeRequest(fields('/d', '0', '=x'))).toThrow(/without a name/);
  });
  it('frames the hello and the answers', () => {
    expect(encodeHello('abc')).toEqual(Buffer.concat([Buffer.from([8, 0, 0, 0]), Buffer.from('WSA1 abc')]));
    expect(encodeAnswer(255, Buffer.from('err\n'))).toEqual(Buffer.concat([Buffer.from('A'), Buffer.from([255, 0, 0, 0]), Buffer.from([4, 0, 0, 0]), Buffer.from('err\n')]));
    expect(DECLINED).toEqual(Buffer.from('D'));
  });
});

describe('what a call forwards, and where the agent listens', () => {
  it('forwards walship, AWS and PostgreSQL variables, HOME and XDG_STATE_HOME, nothing else', () => {
    // (Not the SDK's warning switch, which walship sets itself when it loads the S3 driver.)
    expect(forwardedEnv({ WALSHIP_REPO: '/r', AWS_PROFILE: 'p', PGHOST: 'h', HOME: '/h', XDG_STATE_HOME: '/s', PATH: '/bin', LANG: 'C', SECRET: 'x', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' })).toEqual({
      WALSHIP_REPO: '/r',
      AWS_PROFILE: 'p',
      PGHOST: 'h',
      HOME: '/h',
      XDG_STATE_HOME: '/s',
    });
  });
  it('listens beside the data directory, in a directory named after it', () => {
    expect(agentDir('/var/lib/postgresql/15/main')).toBe('/var/lib/postgresql/15/walship-agent.main');
  });
});
