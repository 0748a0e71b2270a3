#!/usr/bin/env python3
"""A Doshii bulk data client written from Doshii's public documentation,
standard library only: it authenticates as the "Authorisation" and "App
Authentication" pages say, submits a data aggregation request, polls its
status, downloads every file and prints a JSON summary on stdout.

Configuration comes from the environment:
  DOSHII_BASE_URL       e.g. http://127.0.0.1:8080/partner/v3
  DOSHII_APP_ID, DOSHII_CLIENT_ID, DOSHII_CLIENT_SECRET
  DOSHII_ID             the merchant (doshiiId)
  DOSHII_RANGE_START, DOSHII_RANGE_END   unix seconds, [start, end)
  DOSHII_FILE_SIZE      optional, kilobytes per file
"""

import base64
import gzip
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request

BASE = os.environ["DOSHII_BASE_URL"].rstrip("/")
APP_ID = os.environ["DOSHII_APP_ID"]
CLIENT_ID = os.environ["DOSHII_CLIENT_ID"]
CLIENT_SECRET = os.environ["DOSHII_CLIENT_SECRET"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def api_key():
    # HMAC-SHA256 of the client id with the client secret as the key, hex,
    # then ':' and the app id.
    mac = hmac.new(CLIENT_SECRET.encode(), CLIENT_ID.encode(), hashlib.sha256).hexdigest()
    return mac + ":" + APP_ID


def jwt():
    # HS256 with the payload {clientId, timestamp (epoch seconds)}, signed
    # with the client secret; made fresh for every request.
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps({"clientId": CLIENT_ID, "timestamp": int(time.time())}, separators=(",", ":")).encode())
    signing = header + "." + payload
    sig = hmac.new(CLIENT_SECRET.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


def request(method, url, body=None, auth=True):
    headers = {"content-type": "application/json"}
    if auth:
        headers["X-API-KEY"] = api_key()
        headers["authorization"] = "Bearer " + jwt()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def main():
    body = {
        "doshiiId": os.environ["DOSHII_ID"],
        "mimeType": "application/json",
        "sortBy": {"property": "created", "method": "ASC"},
        "range": {"start": int(os.environ["DOSHII_RANGE_START"]), "end": int(os.environ["DOSHII_RANGE_END"])},
    }
    if os.environ.get("DOSHII_FILE_SIZE"):
        body["fileSize"] = int(os.environ["DOSHII_FILE_SIZE"])
    status, raw = request("POST", BASE + "/data/orders", body)
    if status != 200:
        fail("create: %d %s" % (status, raw))
    created = json.loads(raw)
    request_id = created["requestId"]

    deadline = time.time() + 120
    while True:
        status, raw = request("GET", BASE + "/data/orders/" + request_id)
        if status != 200:
            fail("status: %d %s" % (status, raw))
        doc = json.loads(raw)
        if doc["status"] in ("complete", "failed", "aborted"):
            break
        if time.time() > deadline:
            fail("still %s after 2 minutes" % doc["status"])
        time.sleep(0.2)
    if doc["status"] != "complete":
        fail("request ended %s: %s" % (doc["status"], raw))

    orders = total = transactions = amount = 0
    for f in doc["files"]:
        status, _ = request("GET", f["uri"], auth=False)
        if status != 401:
            fail("download without auth: %d, want 401" % status)
        status, raw = request("GET", f["uri"])
        if status != 200:
            fail("download %s: %d" % (f["uri"], status))
        rows = json.loads(gzip.decompress(raw))
        orders += len(rows)
        for o in rows:
            total += o["totalAmount"]
            for t in o["transactions"]:
                transactions += 1
                amount += t["amount"]

    print(json.dumps({
        "requestId": request_id,
        "createdStatus": created["status"],
        "files": len(doc["files"]),
        "orders": orders,
        "total": total,
        "transactions": transactions,
        "amount": amount,
        "tally": doc["tally"],
    }))


if __name__ == "__main__":
    main()
