// One loopback host for several Cloudflare API fakes (tests only), as api.cloudflare.com
// is one host and a command's SDK client has one base URL: each request goes to the first
// fake whose path test matches, with its method, body and every header but the
// hop-by-hop ones (so a fake sees what the client sent: a global key's x-auth-* headers it
// refuses, the cf-* headers it reads); the fake's status, headers (retry-after on a 429)
// and body come back as they were.
import { LoopbackServer } from "./loopback.ts";

export interface ApiRoute {
  /** Whether this fake serves the request's path (with its query string). */
  when: (path: string) => boolean;
  /** The fake's URL up to where the request's path starts (read per request: fakes start later). */
  origin: () => string;
}

/** Headers of one connection (RFC 9110 7.6.1), plus host and the length the router sets. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host", "content-length"]);

export function oneApiHost(routes: ApiRoute[]): LoopbackServer {
  return new LoopbackServer(async (req, body, res) => {
    const path = req.url ?? "/";
    const route = routes.find((r) => r.when(path));
    if (route === undefined) {
      // What api.cloudflare.com answers for a path it has no route for: HTTP 400 with
      // code 7000 "No route for that URI" (as reported in cloudflare/terraform-provider-
      // cloudflare#1097 and cloudflare/workers-sdk#9142).
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ success: false, errors: [{ code: 7000, message: "No route for that URI" }], messages: [], result: null }));
      return;
    }
    const headers: Record<string, string> = {};
    for (const [h, v] of Object.entries(req.headers)) if (typeof v === "string" && !HOP_BY_HOP.has(h)) headers[h] = v;
    const answer = await fetch(`${route.origin()}${path}`, { method: req.method, headers, ...(body.length > 0 ? { body } : {}) });
    const back: Record<string, string> = {};
    // fetch has decoded the body: its length and encoding are the router's to set.
    answer.headers.forEach((v, h) => {
      if (!HOP_BY_HOP.has(h) && h !== "content-length" && h !== "content-encoding") back[h] = v;
    });
    res.writeHead(answer.status, back);
    res.end(Buffer.from(await answer.arrayBuffer()));
  });
}
