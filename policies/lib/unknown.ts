// Values the Pulumi engine sends for inputs not known yet in a preview, as the policy SDK
// recognises them (@pulumi/policy proxy.js: unknownBooleanValue ... unknownObjectValue,
// internal there; a test checks these agree with it).

/** A string input not known yet. Every reference the desired state holds is to a string
 *  output (an id, a name), so the offline plan uses this one. */
export const UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export const UNKNOWN_SENTINELS: ReadonlySet<unknown> = new Set([
  "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", // boolean
  "3eeb2bf0-c639-47a8-9e75-3b44932eb421", // number
  UNKNOWN_STRING,
  "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2", // array
  "030794c1-ac77-496b-92df-f27374a8bd58", // asset
  "e48ece36-62e2-4504-bad9-02848725956a", // archive
  "dd056dcd-154b-4c76-9bd3-c8f88648b5ff", // object
]);

/** The key under which the SDK's proxy (and ours) hands out the object it wraps
 *  (@pulumi/policy proxy.js `getSpecialProxyTarget`): reading through it never throws. */
export const PROXY_TARGET = "__getSpecialProxyTarget";
