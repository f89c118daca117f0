// Keeps wrangler and workerd from phoning home (FINDINGS.md) in everything that starts
// the Worker locally: imported first by miniflare.ts, so it runs before wrangler loads.
// Values already set by the caller win.
for (const [k, v] of Object.entries({
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
})) {
  process.env[k] ??= v;
}
