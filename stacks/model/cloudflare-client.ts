// The one way edgefleet's tools and the Pulumi program make a Cloudflare API client: with
// the API token they were given and nothing else. The SDK's constructor otherwise takes
// CLOUDFLARE_API_KEY, CLOUDFLARE_EMAIL, CLOUDFLARE_API_USER_SERVICE_KEY and
// CLOUDFLARE_BASE_URL from the environment and sends every credential it finds
// (node_modules/cloudflare/client.js: the constructor's defaults and authHeaders): a global
// API key left in an operator's shell would ride beside the token (the API then
// authenticates with the global key: cloudflare/cloudflare-typescript#2454), and to
// whatever host CLOUDFLARE_BASE_URL names. Each tool decides its base URL itself (its own
// option or variable, documented in its --help).
import Cloudflare, { type ClientOptions } from "cloudflare";

export const CLOUDFLARE_API_BASE = "https://api.cloudflare.com/client/v4";

export function cloudflareClient(o: { apiToken: string; baseURL?: string | undefined } & Omit<ClientOptions, "apiToken" | "apiKey" | "apiEmail" | "userServiceKey" | "baseURL">): Cloudflare {
  const { apiToken, baseURL, ...rest } = o;
  return new Cloudflare({ ...rest, apiToken, apiKey: null, apiEmail: null, userServiceKey: null, baseURL: baseURL || CLOUDFLARE_API_BASE });
}
