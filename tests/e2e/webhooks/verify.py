"""Verifies one real delivery from the hub with the unmodified PyPI
`standardwebhooks` package, four ways: as received, with the body tampered,
with a wrong secret, and received ten minutes late (a replay).
Input on stdin: {"secret", "wrong_secret", "body_b64", "headers"}.
Output on stdout: {"as_received", "tampered", "wrong_secret", "late"}, each
"ok" or the library's error message."""
import base64
import json
import sys
from datetime import datetime, timedelta

import standardwebhooks.webhooks as swh
from standardwebhooks.webhooks import Webhook

given = json.load(sys.stdin)
body = base64.b64decode(given["body_b64"]).decode("utf-8")
headers = given["headers"]


def check(secret, payload):
    try:
        Webhook(secret).verify(payload, headers)
        return "ok"
    except Exception as e:  # the library's WebhookVerificationError and the like
        return str(e) or type(e).__name__


out = {
    "as_received": check(given["secret"], body),
    "tampered": check(given["secret"], body.replace("}", ',"x":1}', 1)),
    "wrong_secret": check(given["wrong_secret"], body),
}


class Later(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) + timedelta(minutes=10)


real = swh.datetime
swh.datetime = Later
out["late"] = check(given["secret"], body)
swh.datetime = real
json.dump(out, sys.stdout)
