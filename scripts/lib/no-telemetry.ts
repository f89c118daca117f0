// Keeps wrangler and workerd from phoning home (FINDINGS.md) in everything that starts a
// Worker locally (the proxy's and the router's harnesses, so tests, dev:* and benchmarks):
// import it before wrangler or miniflare, so it runs before they load. Values already set
// by the caller win. NO_TELEMETRY is the same set, for a child process's environment.
export const NO_TELEMETRY = {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
} as const;
for (const [k, v] of Object.entries(NO_TELEMETRY)) {
  process.env[k] ??= v;
}
