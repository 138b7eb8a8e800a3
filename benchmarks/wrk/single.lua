-- One small track event per request: the per-request overhead of POST /collect/<stream>.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"track","event":"Button Clicked","userId":"user-123",'
  .. '"properties":{"button":"signup","page":"/home"},"timestamp":"2026-11-23T10:00:00Z"}'
