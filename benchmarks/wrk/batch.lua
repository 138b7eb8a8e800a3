-- 100 realistic track events per request (about 36 KB), as analytics-node batches them.
-- No messageId: every request repeats one body, and the collector's duplicate window would
-- drop repeated ids; ids it generates are new each time.
-- WRITE_KEY set: sends HTTP Basic auth for /v1/batch; unset: a plain body for /collect.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRITE_KEY")
if key then
  -- base64(key .. ":") for the benchmark key "benchkey"; other keys need their own value.
  assert(key == "benchkey", "batch.lua only knows the Basic auth value of 'benchkey'")
  wrk.headers["Authorization"] = "Basic YmVuY2hrZXk6"
end
local events = {}
for i = 0, 99 do
  events[#events + 1] = string.format(
    '{"type":"track","event":"Product Viewed","userId":"user-%d","anonymousId":null,'
      .. '"timestamp":"2026-11-23T10:00:00.123Z",'
      .. '"properties":{"product_id":"p-991","price":19.99,"currency":"USD","category":"shoes","name":"Runner 3000"},'
      .. '"context":{"library":{"name":"analytics-node","version":"2.1.0"},"userAgent":"Mozilla/5.0 (X11; Linux x86_64)"}}',
    i)
end
wrk.body = '{"batch":[' .. table.concat(events, ",") .. '],"sentAt":"2026-11-23T10:00:01Z"}'
