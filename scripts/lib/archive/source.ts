// Where `npm run archive` reads the archive: the local R2 state `npm run dev:proxy` keeps
// (local.ts) or the deployed bucket through the Cloudflare API (remote.ts).

/** One stored object: its key, the bytes it holds, and the proxy's custom metadata. */
export interface ArchivedObject {
  key: string;
  size: number;
  /** All strings, as R2 keeps them: request_id, tenant, bytes, truncated, status, complete, ended,
   *  content_type_length (a Content-Type stored as application/octet-stream instead). */
  customMetadata: Record<string, string>;
}

export interface ArchiveSource {
  /** Where it reads, for messages (never a token). */
  where: string;
  /** Every object under `prefix`, in key order (paged inside). */
  list(prefix: string): Promise<ArchivedObject[]>;
  /** An object's bytes and content type, or undefined when there is no such object. */
  get(key: string): Promise<{ bytes: Uint8Array; contentType: string | null } | undefined>;
  close(): Promise<void>;
}

