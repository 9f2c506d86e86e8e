"""Benchmark: Jauap's Web Push sender against a naive ``pywebpush.webpush()`` loop.

    python bench/push.py [--messages 500] [--subscriptions 50] [--chunk 50]

One run, same local push service, same messages (the contract's payload, aes128gcm):

* **ours** - one ``notifications.webpush.WebPushSender``: one ``requests.Session``
  (keep-alive), the VAPID key parsed once, the signed VAPID JWT cached per origin;
* **naive** - ``pywebpush.webpush(subscription_info, data, vapid_private_key=<key file>,
  vapid_claims={"sub": ...})`` once per message, as pywebpush's README shows: each call
  reads the key file, signs a new JWT and opens a new connection.

Both encrypt every message with a fresh ephemeral key (that cost is the same for both).
The push service is ``tests/push_endpoint.py`` in a separate process (``--no-verify``: it
counts, answers 201, and does not decrypt, so the figures are the sender's). The two
senders run in alternating chunks so machine load drifts affect both alike. Goal: ours
>= 1.5x the naive rate; exit status 1 when missed. Progress on stderr, results on stdout
with a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pywebpush  # noqa: E402

from notifications.webpush import KEY_FILE, EndpointPolicy, WebPushSender, load_or_create_key  # noqa: E402
from tests.push_endpoint import make_subscription  # noqa: E402

GOAL = 1.5
SUBJECT = "mailto:bench@example.org"


def start_endpoint() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.push_endpoint", "--no-verify"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"push endpoint did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def received(origin: str) -> int:
    with urllib.request.urlopen(f"{origin}/count", timeout=5) as resp:  # loopback only
        return int(resp.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per sender")
    parser.add_argument("--subscriptions", type=int, default=50, help="distinct browser subscriptions")
    parser.add_argument("--chunk", type=int, default=50, help="messages per alternating chunk")
    args = parser.parse_args(argv)

    proc, origin = start_endpoint()
    try:
        with tempfile.TemporaryDirectory() as folder:
            key = load_or_create_key(folder)
            key_file = os.path.join(folder, KEY_FILE)
            # Browser-side subscriptions (keys made like a browser would); the endpoint accepts any id.
            subs = [make_subscription(origin) for _ in range(args.subscriptions)]
            payloads = [json.dumps({"kind": "appeal.assigned", "appeal_id": i, "reg_no": f"TRK-2026-{i:06d}",
                                    "url": f"/field/#/appeal/{i}"}, separators=(",", ":"))
                        for i in range(args.messages)]

            sender = WebPushSender(key, SUBJECT, policy=EndpointPolicy(allow_loopback_http=True))

            def ours(i: int) -> None:
                sub = subs[i % len(subs)]
                result = sender.send({"endpoint": sub.endpoint, "p256dh": sub.p256dh, "auth": sub.auth},
                                     json.loads(payloads[i]))
                if not result.ok:
                    raise SystemExit(f"our sender failed: {result}")

            def naive(i: int) -> None:
                sub = subs[i % len(subs)]
                pywebpush.webpush(subscription_info=sub.as_json(), data=payloads[i], vapid_private_key=key_file,
                                  vapid_claims={"sub": SUBJECT})

            # Warm-up (imports, first connection) outside the timing.
            ours(0)
            naive(0)
            before = received(origin)
            spent = {"ours": 0.0, "naive": 0.0}
            done = {"ours": 0, "naive": 0}
            for start in range(0, args.messages, args.chunk):
                batch = range(start, min(start + args.chunk, args.messages))
                for name, fn in (("ours", ours), ("naive", naive)):
                    t0 = time.perf_counter()
                    for i in batch:
                        fn(i)
                    spent[name] += time.perf_counter() - t0
                    done[name] += len(batch)
                print(f"  {done['ours']}/{args.messages} each ...", file=sys.stderr, flush=True)
            delivered = received(origin) - before
            sender.close()
    finally:
        proc.terminate()
        proc.wait(5)

    rate = {k: done[k] / spent[k] for k in spent}
    ratio = rate["ours"] / rate["naive"]
    ok = ratio >= GOAL and delivered == 2 * args.messages
    print(f"messages per sender      {args.messages} ({args.subscriptions} subscriptions, chunks of {args.chunk})")
    print(f"push service received    {delivered} (expected {2 * args.messages})")
    print(f"ours  (WebPushSender)    {rate['ours']:8.1f} pushes/s  ({1000 / rate['ours']:.2f} ms each)")
    print(f"naive (pywebpush loop)   {rate['naive']:8.1f} pushes/s  ({1000 / rate['naive']:.2f} ms each)")
    print(f"ratio ours / naive       {ratio:.2f}x  (goal >= {GOAL}x)  {'PASS' if ok else 'FAIL'}")
    print(json.dumps({"bench": "push", "messages": args.messages, "ours_per_s": round(rate["ours"], 1),
                      "naive_per_s": round(rate["naive"], 1), "ratio": round(ratio, 2), "received": delivered,
                      "pass": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
