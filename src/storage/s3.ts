/**
 * S3 repository driver (AWS S3 and S3-compatible stores).
 *
 * - Objects live under `<prefix>/<key>` in the bucket (prefix '' = the bucket root).
 * - "Absent" is reported only for a 404 on an object, and only once the bucket itself has been
 *   seen to exist (HEAD responses have no body, so a missing bucket looks like a missing key).
 * - putIfAbsent() HEADs first (some stores ignore If-None-Match), then writes with
 *   `If-None-Match: *` so that, on stores that honour it, two writers can never both win.
 * - Every other failure becomes REPOSITORY_UNAVAILABLE (transport, timeouts, 5xx, throttling,
 *   after the SDK's standard retries) or REPOSITORY_INVALID (missing bucket, access denied,
 *   bad credentials, other 4xx), with a one-line message saying what to do.
 *
 * This is the only module that imports the AWS SDK; storage/open.ts loads it on demand.
 * Credentials come from the SDK's default provider chain only (environment, profile, role).
 */
import { createHash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import {
  S3Client,
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { WalshipError } from '../errors.js';
import type { Config } from '../config.js';
import { bodyRange, bodySize, startedStream, type Body, type Leftover, type ListOptions, type ObjectInfo, type PutOptions, type StorageDriver } from './driver.js';

/** Bodies larger than this are uploaded in parts (a single PUT is limited to 5 GiB). */
export const MULTIPART_THRESHOLD = 64 * 1024 * 1024;
/** Size of each part of a multipart upload (S3 wants at least 5 MiB, except the last part). */
export const MULTIPART_PART_SIZE = 16 * 1024 * 1024;
/** Keys per DeleteObjects request (S3's limit). */
const DELETE_BATCH = 1000;
/** Parts uploaded at the same time. */
const PART_CONCURRENCY = 4;
/** Parts of a body source (a large file's) uploaded at once: each is read into memory while it goes. */
const SOURCE_PART_CONCURRENCY = 2;

/** Test and tuning knobs; production code uses the defaults. */
export interface S3DriverOptions {
  /** MaxKeys of each ListObjectsV2 page (S3 caps it at 1000). */
  listPageSize?: number;
  multipartThreshold?: number;
  partSize?: number;
}

/** The fields of an SDK or Node error that tell what went wrong. */
interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  errors?: unknown[];
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

const CREDENTIAL_HINT =
  'check credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role) and the bucket policy';
/** S3 error codes that mean the credentials or permissions are wrong. */
const AUTH_ERRORS = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'InvalidSecurity',
]);
/** S3 error codes (with a 4xx status) that are transient rather than misconfiguration. */
const TRANSIENT_4XX = new Set([
  'RequestTimeout',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'ConditionalRequestConflict',
  'OperationAborted',
]);

// The SDK prints a multi-line "upgrade node" warning on Node < 22 to stderr, which would end up
// in PostgreSQL's log on every archive_command; walship supports Node 20, so silence it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export class S3Driver implements StorageDriver {
  readonly location: string;
  private readonly client: S3Client;
  /** Where requests go, for messages (no userinfo). */
  private readonly endpoint: string;
  private readonly cfg: Config;
  private readonly pageSize: number;
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  /** Set once the bucket has been seen to exist, so 404s on objects can be trusted. */
  private bucketSeen = false;
  /** putIfAbsent calls in flight per key, so calls in this process for one key run one at a time. */
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(
    readonly bucket: string,
    readonly prefix: string,
    cfg: Config,
    opts: S3DriverOptions = {},
  ) {
    this.cfg = cfg;
    this.location = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
    this.endpoint = cfg.s3_endpoint ? printableEndpoint(cfg.s3_endpoint) : `AWS S3 (${cfg.s3_region})`;
    this.pageSize = opts.listPageSize ?? 1000;
    this.multipartThreshold = opts.multipartThreshold ?? MULTIPART_THRESHOLD;
    this.partSize = opts.partSize ?? MULTIPART_PART_SIZE;
    if (cfg.s3_endpoint !== undefined && !/^https?:\/\/[^/]/i.test(cfg.s3_endpoint)) {
      throw new WalshipError('CONFIG_INVALID', `invalid s3_endpoint '${this.endpoint}': expected a URL such as https://minio.example.com:9000`);
    }
    const timeout = cfg.s3_request_timeout;
    this.client = new S3Client({
      region: cfg.s3_region,
      endpoint: cfg.s3_endpoint,
      forcePathStyle: cfg.s3_force_path_style,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      retryMode: 'standard',
      maxAttempts: cfg.s3_max_retries + 1,
      // Options for the SDK's NodeHttpHandler: each attempt must connect, and get its response
      // headers, within the timeout; a body that stalls that long also fails the request.
      requestHandler: {
        connectionTimeout: timeout,
        requestTimeout: timeout,
        socketTimeout: timeout,
        throwOnRequestTimeout: true,
      },
    });
    // Counted where each attempt is sent, after the retry logic.
    this.client.middlewareStack.add(
      (next) => async (args) => {
        this.attempts++;
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'walshipCountRequests' },
    );
  }

  /** The object key in the bucket. */
  private fullKey(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === '' || p === '.')) throw new Error(`bad storage key ${key}`);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private where(key?: string): string {
    return key === undefined ? this.location : `s3://${this.bucket}/${this.fullKey(key)}`;
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      this.bucketSeen = true;
    } catch (err) {
      // HEAD responses have no body: a 404 here can only mean the bucket is missing.
      if (status(err) === 404) throw this.noSuchBucket();
      throw this.fail('access', undefined, err);
    }
  }

  /** Buckets are never created by walship: this only verifies the bucket is there and usable. */
  async create(): Promise<void> {
    await this.check();
  }

  /**
   * GET and read the body. The SDK retries a request that fails before its response; a body cut
   * off midway (a connection reset while streaming) is retried here, the whole GET again.
   */
  private async getObject(input: { Bucket: string; Key: string; Range?: string }): Promise<{ buf: Buffer; contentRange: string | undefined }> {
    for (let attempt = 0; ; attempt++) {
      const res = await this.client.send(new GetObjectCommand(input));
      try {
        return { buf: await readBody(res.Body), contentRange: res.ContentRange };
      } catch (err) {
        if (attempt >= this.cfg.s3_max_retries) throw err;
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }

  async get(key: string): Promise<Buffer | null> {
    const Key = this.fullKey(key);
    try {
      return (await this.getObject({ Bucket: this.bucket, Key })).buf;
    } catch (err) {
      if (status(err) === 404) return this.absent(err);
      throw this.fail('read', key, err);
    }
  }

  getStream(key: string): Promise<AsyncGenerator<Buffer, void> | null> {
    return startedStream(this.readChunks(key));
  }

  /**
   * The object's body as it arrives. A body that breaks off is read on from where it stopped: a
   * ranged GET of the same object (If-Match its ETag), up to s3_max_retries times.
   */
  private async *readChunks(key: string): AsyncGenerator<Buffer, void> {
    const Key = this.fullKey(key);
    let res;
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      if (status(err) === 404) return void (await this.absent(err));
      throw this.fail('read', key, err);
    }
    const etag = res.ETag;
    let at = 0;
    // What a resumed answer repeats (a store that ignored the Range sends the object whole).
    let skip = 0;
    yield Buffer.alloc(0);
    for (let attempt = 0; ; ) {
      try {
        for await (const chunk of (res.Body ?? []) as AsyncIterable<Uint8Array>) {
          let b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          if (skip > 0) {
            const n = Math.min(skip, b.length);
            skip -= n;
            b = b.subarray(n);
            if (b.length === 0) continue;
          }
          at += b.length;
          yield b;
        }
        return;
      } catch (err) {
        if (err instanceof WalshipError || attempt++ >= this.cfg.s3_max_retries) throw this.fail('read', key, err);
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
        try {
          res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: `bytes=${at}-`, ...(etag ? { IfMatch: etag } : {}) }));
        } catch (e) {
          // 416: it broke off exactly at its end.
          if (status(e) === 416) return;
          throw this.fail('read', key, e);
        }
        skip = res.ContentRange ? 0 : at;
      }
    }
  }

  async getRange(key: string, start: number, length: number): Promise<Buffer | null> {
    if (length <= 0) return (await this.head(key)) ? Buffer.alloc(0) : null;
    const Key = this.fullKey(key);
    try {
      const { buf, contentRange } = await this.getObject({ Bucket: this.bucket, Key, Range: `bytes=${start}-${start + length - 1}` });
      // A store that ignores Range answers 200 with the whole object.
      return contentRange ? buf : buf.subarray(start, start + length);
    } catch (err) {
      if (status(err) === 404) return this.absent(err);
      // 416: the object exists but ends before `start`; like a read past the end of a file.
      if (status(err) === 416) return Buffer.alloc(0);
      throw this.fail('read', key, err);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const Key = this.fullKey(key);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return { key, size: res.ContentLength ?? 0, meta: res.Metadata ?? {} };
    } catch (err) {
      if (status(err) === 404) return this.absent(err);
      throw this.fail('stat', key, err);
    }
  }

  /** A 404 on an object means "absent" only while the bucket itself exists. */
  private async absent(err: unknown): Promise<null> {
    if ((err as SdkError).name === 'NoSuchBucket') throw this.noSuchBucket();
    if (!this.bucketSeen) await this.check();
    return null;
  }

  async putIfAbsent(key: string, body: Body, opts: PutOptions = {}): Promise<'created' | 'exists'> {
    this.fullKey(key); // validates the key
    checkMeta(key, opts.meta);
    // Calls for one key in this process run one after the other, so the HEAD below sees the
    // winner even on stores that ignore If-None-Match.
    const prev = this.inflight.get(key) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.putOnce(key, body, opts));
    this.inflight.set(key, run);
    try {
      return await run;
    } finally {
      if (this.inflight.get(key) === run) this.inflight.delete(key);
    }
  }

  async replace(key: string, body: Body, opts: PutOptions = {}): Promise<void> {
    checkMeta(key, opts.meta);
    const common = this.putParams(key, opts);
    try {
      if (this.multipart(body)) {
        await this.putMultipart(common, body, false);
        return;
      }
      const whole = await bodyRange(body, 0, bodySize(body));
      await this.client.send(new PutObjectCommand({ ...common, Body: whole, ContentMD5: md5(whole) }));
    } catch (err) {
      throw this.fail('write', key, err);
    }
  }

  private putParams(key: string, opts: PutOptions) {
    return {
      Bucket: this.bucket,
      Key: this.fullKey(key),
      ContentType: opts.contentType ?? 'application/octet-stream',
      Metadata: opts.meta,
      StorageClass: this.cfg.s3_storage_class as StorageClass | undefined,
      ...this.encryption(),
    };
  }

  /**
   * Whether a body goes up in parts: a buffer larger than the threshold; a source (a large
   * file's) larger than one part, so that no more than a part of it is ever held at once.
   */
  private multipart(body: Body): boolean {
    return Buffer.isBuffer(body) ? body.length > this.multipartThreshold : body.size > this.partSize;
  }

  private async putOnce(key: string, body: Body, opts: PutOptions): Promise<'created' | 'exists'> {
    if (await this.head(key)) return 'exists';
    const common = this.putParams(key, opts);
    try {
      if (this.multipart(body)) return await this.putMultipart(common, body);
      const whole = await bodyRange(body, 0, bodySize(body));
      await this.client.send(new PutObjectCommand({ ...common, Body: whole, ContentMD5: md5(whole), IfNoneMatch: '*' }));
      return 'created';
    } catch (err) {
      if (isPreconditionFailed(err)) return 'exists';
      // 409: another writer's conditional write was in progress; NoSuchUpload: a retried
      // completion whose first try went through. Either way, "exists" only if the object is there.
      if ((status(err) === 409 || (err as SdkError).name === 'NoSuchUpload') && (await this.head(key))) return 'exists';
      throw this.fail('write', key, err);
    }
  }

  private encryption(): { ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string } {
    if (this.cfg.s3_sse === 'none') return {};
    if (this.cfg.s3_sse === 'aws:kms') return { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: this.cfg.s3_sse_kms_key_id };
    return { ServerSideEncryption: 'AES256' };
  }

  /**
   * Multipart upload: parts are uploaded a few at a time, then completed with If-None-Match: *.
   * Nothing is visible under the key until the completion succeeds; on failure the upload is
   * aborted (best effort; a bucket lifecycle rule should clean up what an abort misses).
   */
  private async putMultipart(
    common: { Bucket: string; Key: string; ContentType: string; Metadata?: Record<string, string>; StorageClass?: StorageClass },
    body: Body,
    createOnly = true,
  ): Promise<'created'> {
    const { Bucket, Key } = common;
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand(common));
    if (!UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
    try {
      const count = Math.ceil(bodySize(body) / this.partSize);
      const parts: CompletedPart[] = new Array(count);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < count) {
          const i = next++;
          const chunk = await bodyRange(body, i * this.partSize, this.partSize);
          const res = await this.client.send(
            new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body: chunk, ContentMD5: md5(chunk) }),
          );
          parts[i] = { PartNumber: i + 1, ETag: res.ETag };
        }
      };
      await Promise.all(Array.from({ length: Math.min(Buffer.isBuffer(body) ? PART_CONCURRENCY : SOURCE_PART_CONCURRENCY, count) }, worker));
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts }, ...(createOnly && { IfNoneMatch: '*' }) }),
      );
      return 'created';
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  /**
   * The pages of one ListObjectsV2 listing of `Prefix` (a full key, the driver's prefix in front),
   * from `StartAfter`, grouped by `Delimiter` when given.
   */
  private async *pages(params: { Prefix: string; StartAfter?: string; Delimiter?: string }): AsyncIterable<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: params.Prefix,
            MaxKeys: this.pageSize,
            ContinuationToken: token,
            ...(params.Delimiter && { Delimiter: params.Delimiter }),
            ...(!token && params.StartAfter && { StartAfter: params.StartAfter }),
          }),
        );
      } catch (err) {
        if (status(err) === 404) throw this.noSuchBucket();
        throw this.fail('list', undefined, err);
      }
      yield page;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !token) {
        throw new WalshipError('REPOSITORY_UNAVAILABLE', `cannot list ${this.location}: the store returned a truncated listing without a continuation token`);
      }
    } while (token);
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    const base = this.prefix ? `${this.prefix}/` : '';
    // Keys sort the same with the driver's prefix in front: startAfter carries it too.
    const StartAfter = opts.startAfter && opts.startAfter > prefix ? base + opts.startAfter : undefined;
    for await (const page of this.pages({ Prefix: base + prefix, StartAfter })) {
      for (const obj of page.Contents ?? []) {
        if (obj.Key === undefined || !obj.Key.startsWith(base)) continue;
        yield { key: obj.Key.slice(base.length), size: obj.Size ?? 0 };
      }
    }
  }

  async children(dir: string): Promise<string[]> {
    if (!dir.endsWith('/')) throw new Error(`children: ${dir} is not a directory prefix`);
    const Prefix = (this.prefix ? `${this.prefix}/` : '') + dir;
    const names = new Set<string>();
    for await (const page of this.pages({ Prefix, Delimiter: '/' })) {
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix?.startsWith(Prefix)) names.add(p.Prefix.slice(Prefix.length).replace(/\/$/, ''));
      for (const o of page.Contents ?? []) if (o.Key?.startsWith(Prefix)) names.add(o.Key.slice(Prefix.length));
    }
    return [...names].filter((n) => n !== '').sort();
  }

  async remove(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      let out;
      try {
        out = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((k) => ({ Key: this.fullKey(k) })), Quiet: true } }),
        );
      } catch (err) {
        throw this.fail('remove', batch[0], err);
      }
      // A key that names no object is not an error (S3 reports it deleted); anything listed here is.
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const e = failed[0]!;
        throw new WalshipError(
          'REPOSITORY_UNAVAILABLE',
          `cannot remove ${failed.length} of ${batch.length} objects from ${this.location} (first: ${e.Key ?? '?'}: ${e.Code ?? '?'} ${oneLine(e.Message ?? '')}); check the credentials allow s3:DeleteObject`,
        );
      }
    }
  }

  async *leftovers(prefix: string): AsyncIterable<Leftover> {
    const base = this.prefix ? `${this.prefix}/` : '';
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: base + prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (err) {
        // A store without the call (some S3-compatible ones) keeps no incomplete uploads to list.
        if (status(err) === 501 || (err as SdkError).name === 'NotImplemented') return;
        throw this.fail('list the incomplete uploads of', prefix, err);
      }
      for (const u of page.Uploads ?? []) {
        if (u.Key?.startsWith(base)) yield { key: u.Key.slice(base.length), size: 0, since: (u.Initiated ?? new Date(0)).toISOString(), kind: 'incomplete-upload' };
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  /** HTTP requests sent so far, retries included (counted as each attempt is made). */
  private attempts = 0;
  get requests(): number {
    return this.attempts;
  }

  private noSuchBucket(): WalshipError {
    return new WalshipError(
      'REPOSITORY_INVALID',
      `bucket "${this.bucket}" does not exist at ${this.endpoint}: create it (walship does not create buckets), or check the repo URL, s3_endpoint and s3_region`,
    );
  }

  /** Turns any failure into a one-line WalshipError naming the object, the cause and a remedy. */
  private fail(what: string, key: string | undefined, err: unknown): WalshipError {
    if (err instanceof WalshipError) return err;
    const e = (err ?? {}) as SdkError;
    const httpStatus = status(err);
    const name = e.name ?? '';
    const attempts = e.$metadata?.attempts;
    const tries = attempts && attempts > 1 ? ` after ${attempts} attempts` : '';
    const head = `cannot ${what} ${this.where(key)}${tries}`;
    const make = (code: 'REPOSITORY_UNAVAILABLE' | 'REPOSITORY_INVALID', cause: string, hint: string) =>
      new WalshipError(code, `${head}: ${oneLine(cause)}; ${hint}`, { cause: err });

    if (name === 'CredentialsProviderError' || /could not load credentials/i.test(e.message ?? '')) {
      const detail = (e.message ?? '').split('\n')[0]!.replace(/\.\s*$/, '');
      return make('REPOSITORY_INVALID', `no AWS credentials found${detail ? ` (${detail})` : ''}`, 'set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or attach an instance role');
    }
    if (name === 'NoSuchBucket') return this.noSuchBucket();
    if (httpStatus === undefined) {
      // No HTTP response at all: connection refused/reset, DNS, timeouts. The SDK names a socket
      // the other end reset or closed (ECONNRESET, EPIPE) "TimeoutError" too, as it does its own
      // timeouts (ETIMEDOUT): a reset is reported as what it is.
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') {
        return make('REPOSITORY_UNAVAILABLE', `the connection to ${this.endpoint} was closed by the other end (${describeTransport(e)})`, 'check the store, any proxy or load balancer before it, and the network');
      }
      const cause =
        name === 'TimeoutError'
          ? `no response from ${this.endpoint} within s3_request_timeout=${this.cfg.s3_request_timeout} ms`
          : `cannot reach ${this.endpoint} (${describeTransport(e)})`;
      return make('REPOSITORY_UNAVAILABLE', cause, 'check s3_endpoint and the network, or raise s3_request_timeout / s3_max_retries');
    }
    const cause = describeHttp(httpStatus, e);
    if (httpStatus >= 500 || httpStatus === 429 || TRANSIENT_4XX.has(name)) {
      return make('REPOSITORY_UNAVAILABLE', cause, 'the store is failing or throttling requests, try again later');
    }
    if (httpStatus === 403 || httpStatus === 401 || AUTH_ERRORS.has(name)) return make('REPOSITORY_INVALID', cause, CREDENTIAL_HINT);
    if (name === 'RequestTimeTooSkewed') return make('REPOSITORY_INVALID', cause, 'fix the system clock');
    if (httpStatus === 301 || name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') {
      return make('REPOSITORY_INVALID', cause, 'the bucket is in another region or needs another endpoint: check s3_region, s3_endpoint and s3_force_path_style');
    }
    return make('REPOSITORY_INVALID', cause, 'check the repo URL and the s3_* settings');
  }
}

function status(err: unknown): number | undefined {
  return (err as SdkError | undefined)?.$metadata?.httpStatusCode;
}

function isPreconditionFailed(err: unknown): boolean {
  return status(err) === 412 || (err as SdkError).name === 'PreconditionFailed';
}

/** The whole response body as a Buffer (a stalled body fails through the socket timeout). */
async function readBody(body: { transformToByteArray(): Promise<Uint8Array> } | undefined): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const bytes = await body.transformToByteArray();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function md5(buf: Buffer): string {
  return createHash('md5').update(buf).digest('base64');
}

/** User metadata must survive HTTP headers unchanged: lowercase keys, printable ASCII values. */
function checkMeta(key: string, meta: Record<string, string> | undefined): void {
  for (const [k, v] of Object.entries(meta ?? {})) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(k) || !/^[\x20-\x7e]*$/.test(v)) {
      throw new WalshipError('INTERNAL', `metadata ${JSON.stringify(k)} of ${key} cannot be stored in S3: keys must be lowercase [a-z0-9-], values printable ASCII`);
    }
  }
}

/** "InvalidAccessKeyId (HTTP 403): <S3's message>", or "HTTP 403 Forbidden" when the response had no body (HEAD). */
function describeHttp(httpStatus: number, e: SdkError): string {
  const name = e.name ?? '';
  if (!name || /^(Unknown|UnknownError|\d+)$/.test(name)) return `HTTP ${httpStatus} ${STATUS_CODES[httpStatus] ?? ''}`.trim();
  const msg = (e.message ?? '').replace(/\.\s*$/, '');
  return `${name} (HTTP ${httpStatus})${msg && msg !== name && msg !== 'UnknownError' ? `: ${msg}` : ''}`;
}

/** Connection-level error text, e.g. "ECONNREFUSED 127.0.0.1:9000" (Node may wrap it in an AggregateError). */
function describeTransport(e: SdkError): string {
  const inner = (e.errors?.[0] ?? e) as SdkError;
  const msg = inner.message || e.message || '';
  return e.code && !msg.includes(e.code) ? `${e.code}${msg ? `: ${msg}` : ''}` : msg || e.code || e.name || 'unknown error';
}

/** The endpoint URL without any userinfo, for messages. */
function printableEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return endpoint;
  }
}

function oneLine(s: string): string {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}
