// Shared by the benchmark scripts: s3rver on 127.0.0.1, in a child process (its ListObjectsV2
// continuation tokens need OpenSSL's legacy provider, which a child can have on its own).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** The credentials s3rver takes (it does not check signatures). */
export const S3_KEY = 'S3RVER';

/** Starts s3rver storing in `dir` with `bucket`; resolves with its endpoint and a stop(). */
export async function startS3rver(root, dir, bucket) {
  mkdirSync(dir, { recursive: true });
  const main = createRequire(join(root, 'package.json')).resolve('s3rver');
  const code = `
    const S3rver = require(${JSON.stringify(main)});
    const s = new S3rver({ directory: ${JSON.stringify(dir)}, address: '127.0.0.1', port: 0, silent: true, configureBuckets: [{ name: ${JSON.stringify(bucket)} }] });
    s.run().then((a) => process.stdout.write(JSON.stringify({ port: a.port }) + '\\n'));
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /\{"port":(\d+)\}/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (c) => reject(new Error(`s3rver exited ${c}`)));
  });
  process.once('exit', () => child.kill('SIGKILL'));
  return { port, endpoint: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}
