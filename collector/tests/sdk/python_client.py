"""Sends the shared SDK scenario (see mod.rs) through segment-analytics-python.

Usage: python_client.py HOST WRITE_KEY PREFIX COUNT
Prints {"library_version": ..., "errors": [...]} once every batch has been answered.
"""

import datetime
import json
import sys

import segment.analytics as analytics_module
from segment.analytics import Client
from segment.analytics.version import VERSION

host, write_key, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
errors = []

client = Client(
    write_key,
    host=host,
    gzip=True,
    upload_size=100,
    max_retries=1,
    on_error=lambda error, batch: errors.append(f"{error} ({len(batch)} events)"),
)
start = datetime.datetime(2026, 3, 1, 10, 0, 0, tzinfo=datetime.timezone.utc)

for i in range(count):
    user = f"{prefix}-user-{i}"
    at = start + datetime.timedelta(seconds=i)
    client.track(user, "Order Completed", {"i": i, "sku": f"sku-{i}", "price": 9.5},
                 timestamp=at, message_id=f"{prefix}-track-{i}")
    client.identify(user, {"email": f"{prefix}-{i}@example.com", "plan": "pro"},
                    timestamp=at, message_id=f"{prefix}-identify-{i}")
    client.page(user, name="Pricing", properties={"i": i, "path": "/pricing"},
                timestamp=at, message_id=f"{prefix}-page-{i}")
    client.screen(user, name="Home", properties={"i": i},
                  timestamp=at, message_id=f"{prefix}-screen-{i}")
    client.group(user, f"{prefix}-team-{i % 5}", {"name": f"Team {i % 5}"},
                 timestamp=at, message_id=f"{prefix}-group-{i}")
    client.alias(f"{prefix}-anon-{i}", user, timestamp=at, message_id=f"{prefix}-alias-{i}")

client.flush()
client.shutdown()
print(json.dumps({"library_version": VERSION, "errors": errors}))
