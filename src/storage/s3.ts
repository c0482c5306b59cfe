/** S3 driver: placeholder until the S3 issue lands. */
import { WalshipError } from '../errors.js';
import type { Config } from '../config.js';
import type { ObjectInfo, StorageDriver } from './driver.js';

export class S3Driver implements StorageDriver {
  readonly location: string;
  constructor(bucket: string, prefix: string, _cfg: Config) {
    this.location = `s3://${bucket}/${prefix}`;
  }
  private no(): never {
    throw new WalshipError('CONFIG_INVALID', 's3:// repositories are not supported yet');
  }
  get(): Promise<Buffer | null> { return this.no(); }
  getRange(): Promise<Buffer | null> { return this.no(); }
  head(): Promise<ObjectInfo | null> { return this.no(); }
  putIfAbsent(): Promise<'created' | 'exists'> { return this.no(); }
  list(): AsyncIterable<ObjectInfo> { return this.no(); }
  check(): Promise<void> { return this.no(); }
  create(): Promise<void> { return this.no(); }
}
