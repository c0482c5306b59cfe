/** Reading a local file's bytes at a position until a buffer is full, as many reads as the kernel needs. */
import type { FileHandle } from 'node:fs/promises';

/** Reads into `buf` the file's bytes from `position` on until `buf` is full or the file ends; the bytes read (fewer: it ended). */
export async function readFull(fh: FileHandle, buf: Buffer, position: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}
