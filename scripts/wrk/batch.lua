-- wrk script: NDJSON batches of 1,000 events per POST /api/v1/events/batch.
local batch = {}
local pad = string.rep("x", 140)
for i = 1, 1000 do
  batch[i] = string.format(
    '{"event_type":"metric.sample","entity_id":"entity-%d","payload":{"seq":%d,"value":%d,"note":"%s"}}',
    i % 1000, i, i % 97, pad)
end
wrk.method = "POST"
wrk.path = "/api/v1/events/batch"
wrk.headers["Content-Type"] = "application/x-ndjson"
wrk.body = table.concat(batch, "\n")

done = function(summary, latency, requests)
  io.write(string.format("events/s %.0f (requests/s %.0f)  p50 %.2f ms  p99 %.2f ms  non-2xx %d\n",
    1000 * summary.requests / (summary.duration / 1e6), summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end
