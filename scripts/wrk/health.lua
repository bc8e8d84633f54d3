-- wrk script: GET /health, the server's route with no storage work: the HTTP layer's own ceiling, measured
-- on the same server and connections as the single-event POSTs.
wrk.method = "GET"
wrk.path = "/health"

done = function(summary, latency, requests)
  io.write(string.format("requests/s %.0f  p50 %.2f ms  p99 %.2f ms  non-2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
