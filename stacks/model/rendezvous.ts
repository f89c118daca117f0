// Rendezvous (highest-random-weight) hashing, shared by the DNS shards (shards.ts) and the
// router's shards (router-shards.ts): a key goes to the member where its weight is highest,
// so adding a member moves only the keys that now prefer it.
import { createHash } from "node:crypto";

/** The weight of a key on a member. */
export function rendezvousWeight(member: string, key: string): bigint {
  return createHash("sha256").update(`${member}\0${key}`).digest().readBigUInt64BE(0);
}
