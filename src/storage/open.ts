/**
 * Opens the driver for a repository URL. Each driver is imported when a repository of its kind is
 * opened (the S3 SDK only for s3://), so parsing a URL loads nothing.
 */
import { fileURLToPath } from 'node:url';
import { isAbsolute, normalize } from 'node:path';
import { WalshipError } from '../errors.js';
import type { Config } from '../config.js';
import type { StorageDriver } from './driver.js';

export type RepoUrl = { kind: 'fs'; path: string; canonical: string } | { kind: 's3'; bucket: string; prefix: string; canonical: string };

export function parseRepoUrl(url: string): RepoUrl {
  if (url.startsWith('s3://')) {
    const rest = url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new WalshipError('CONFIG_INVALID', `invalid repo '${url}': "${bucket}" is not a valid S3 bucket name`);
    }
    return { kind: 's3', bucket, prefix, canonical: `s3://${bucket}${prefix ? `/${prefix}` : ''}` };
  }
  let path = url;
  if (url.startsWith('file://')) {
    try {
      path = fileURLToPath(url);
    } catch {
      throw new WalshipError('CONFIG_INVALID', `invalid repo '${url}': expected file:///absolute/path`);
    }
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new WalshipError('CONFIG_INVALID', `invalid repo '${url}': supported are an absolute path, file:///path and s3://bucket/prefix`);
  }
  if (!isAbsolute(path)) {
    throw new WalshipError('CONFIG_INVALID', `invalid repo '${url}': the path must be absolute (archive_command runs in the data directory)`);
  }
  const norm = normalize(path).replace(/\/+$/, '') || '/';
  return { kind: 'fs', path: norm, canonical: `file://${norm}` };
}

export async function openStorage(url: string, cfg: Config): Promise<StorageDriver> {
  const parsed = parseRepoUrl(url);
  if (parsed.kind === 'fs') return new (await import('./fs.js')).FsDriver(parsed.path);
  const { S3Driver } = await import('./s3.js');
  return new S3Driver(parsed.bucket, parsed.prefix, cfg);
}
