/**
 * The client-agent protocol, on a unix socket. Every string is a 32-bit little-endian length and
 * its bytes.
 *   agent → client, at once:  hello = string "WSA1 <build id>"; a client of another build
 *                              closes and runs the call in node.
 *   client → agent:           request = 32-bit count n, then n strings: the working directory, the
 *                              argument count k, the k arguments after the program's name, then
 *                              the forwarded environment as NAME=value (place.ts).
 *   agent → client:           answer = one byte, 'A' (answered: a 32-bit exit code and a string,
 *                              the call's stderr) or 'D' (declined: run the call in node).
 * Pure: encoding and decoding only.
 */
export const MAGIC = 'WSA1';

export interface Request {
  cwd: string;
  argv: string[];
  env: Record<string, string>;
}

function str(s: string | Buffer): Buffer {
  const body = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  return Buffer.concat([len, body]);
}

export function encodeHello(buildId: string): Buffer {
  return str(`${MAGIC} ${buildId}`);
}

export function encodeRequest(r: Request): Buffer {
  const fields = [r.cwd, String(r.argv.length), ...r.argv, ...Object.entries(r.env).map(([k, v]) => `${k}=${v}`)];
  const n = Buffer.alloc(4);
  n.writeUInt32LE(fields.length);
  return Buffer.concat([n, ...fields.map(str)]);
}

/** The request in `buf`: null while it is incomplete; throws on one that cannot be a request. */
export function decodeRequest(buf: Buffer, maxBytes = 1 << 20): Request | null {
  if (buf.length > maxBytes) throw new Error(`a request longer than ${maxBytes} bytes`);
  if (buf.length < 4) return null;
  const n = buf.readUInt32LE(0);
  if (n < 2 || n > 100_000) throw new Error(`a request of ${n} fields`);
  const fields: string[] = [];
  let at = 4;
  for (let i = 0; i < n; i++) {
    if (buf.length < at + 4) return null;
    const len = buf.readUInt32LE(at);
    if (buf.length < at + 4 + len) return null;
    fields.push(buf.toString('utf8', at + 4, at + 4 + len));
    at += 4 + len;
  }
  const k = Number(fields[1]);
  if (!Number.isInteger(k) || k < 0 || 2 + k > n) throw new Error('a request whose argument count does not fit');
  const env: Record<string, string> = {};
  for (const e of fields.slice(2 + k)) {
    const eq = e.indexOf('=');
    if (eq <= 0) throw new Error('an environment entry without a name');
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return { cwd: fields[0]!, argv: fields.slice(2, 2 + k), env };
}

export function encodeAnswer(code: number, stderr: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write('A', 0, 'latin1');
  head.writeUInt32LE(code >>> 0, 1);
  return Buffer.concat([head, str(stderr)]);
}

export const DECLINED = Buffer.from('D', 'latin1');
