-- wrk script: one event per POST /api/v1/events, ~200-byte payloads over 1,000 entities.
local counter = 0
local pad = string.rep("x", 140)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local body = string.format(
    '{"event_type":"metric.sample","entity_id":"entity-%d","payload":{"seq":%d,"value":%d,"note":"%s"}}',
    counter % 1000, counter, counter % 97, pad)
  return wrk.format(nil, "/api/v1/events", nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format("events/s %.0f  p50 %.2f ms  p99 %.2f ms  non-2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
