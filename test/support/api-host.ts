// One loopback host for several Cloudflare API fakes (tests only), as api.cloudflare.com
// is one host and a command's SDK client has one base URL: each request goes to the first
// fake whose path test matches, with its method, body and the headers the API reads
// (authorization, content type, Cloudflare's own cf-* headers); the fake's status, content
// type and body come back as they were.
import { LoopbackServer } from "./loopback.ts";

export interface ApiRoute {
  /** Whether this fake serves the request's path (with its query string). */
  when: (path: string) => boolean;
  /** The fake's URL up to where the request's path starts (read per request: fakes start later). */
  origin: () => string;
}

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
    for (const [h, v] of Object.entries(req.headers)) if (typeof v === "string" && (h === "authorization" || h === "content-type" || h.startsWith("cf-"))) headers[h] = v;
    const answer = await fetch(`${route.origin()}${path}`, { method: req.method, headers, ...(body.length > 0 ? { body } : {}) });
    res.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "application/json" });
    res.end(Buffer.from(await answer.arrayBuffer()));
  });
}
