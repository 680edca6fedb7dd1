"""Benchmark: a full dialogue step against a bare Flask endpoint, served by one process on loopback.

(a) a bare Flask endpoint returning fixed TwiML; (b) a full signed call step (load the state, run
the dialogue, store the step and the new state, render TwiML). Both are served by the same server
process, requested alternately over one keep-alive connection, and the ratio of median latencies
(b)/(a) is printed. Target: at most 2.0 on SQLite.

Then (c) a spoken answer at the main menu ("I'd like to opt out please", posted as SpeechResult with
Twilio's Confidence), which goes through the intent model where the dialogue asks it, timed alternately
with the bare endpoint again; after each, an untimed 9 brings the call back to the menu. The ratio
(c)/(a) of medians is printed. Target: at most 2.5. The server learns the model before it serves, as a
worker has once it has heard its first words, so no timed request pays for learning it.

    .venv/bin/python bench/webhook_latency.py [--requests 2000] [--one-cpu]

With --one-cpu the server and the client share one CPU, so each request no longer moves between
two CPUs' caches; the step touches far more memory than the bare endpoint, so it suffers more.
"""

import argparse
import http.client
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "bench-auth-token"
FIXED_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello</Say></Response>'
SPOKEN = {"SpeechResult": "I'd like to opt out please", "Confidence": "0.92"}


def serve(port: int, database_url: str) -> None:
    """The server process: the real app plus one bare route, on werkzeug's HTTP/1.1 server."""
    from flask import Response
    from werkzeug.serving import make_server

    import migrations
    from app import create_app
    from ivr.line.understanding.model import shared_model

    migrations.upgrade(database_url)
    shared_model()  # learned once per process, on the first words heard: here before any request is timed
    app = create_app({"database_url": database_url, "secret_key": "bench", "twilio_auth_token": TOKEN})
    # Neither route logs a line per request here; a production server logs access elsewhere.
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    def bare() -> Response:
        return Response(FIXED_TWIML, mimetype="text/xml")

    app.add_url_rule("/bench/bare", "bare", bare, methods=["POST"])
    app.extensions["csrf"].exempt(bare)  # a webhook-like route, as the Twilio blueprints are
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int) -> None:
        from twilio.request_validator import RequestValidator

        self.port = port
        self.validator = RequestValidator(TOKEN)
        self.connection = http.client.HTTPConnection("127.0.0.1", port)

    def post(self, path: str, params: dict[str, str]) -> tuple[float, int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self.validator.compute_signature(url, params),
        }
        body = urlencode(params)
        started = time.perf_counter()
        self.connection.request("POST", path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode()
        return time.perf_counter() - started, response.status, text


def wait_until_up(port: int, server: subprocess.Popen[bytes]) -> None:
    # Up to a minute: the server imports scikit-learn and learns the model first, seconds on a busy machine.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


Timings = tuple[list[float], list[float]]  # the bare endpoint's seconds, and the step's, request by request


def measure(requests: int) -> tuple[Timings, Timings]:
    """The key press beside the bare endpoint, then the spoken answer beside it, from one server."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite:///{folder}/bench.sqlite"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), database_url])
        try:
            wait_until_up(port, server)
            client = Client(port)
            return _run(client, requests), _run_speech(client, requests)
        finally:
            server.terminate()
            server.wait()


def _run(client: Client, requests: int) -> tuple[list[float], list[float]]:
    bare: list[float] = []
    step: list[float] = []
    keys = ("1", "1", "9")  # into the information sections and back to the menu, round and round
    call = {"CallSid": "CA" + uuid.uuid4().hex, "From": "+447700900001", "To": "+442079460000"}
    client.post("/twilio/voice", call)
    turn = 1
    for i in range(requests + requests // 10):
        bare_seconds, status, _ = client.post("/bench/bare", call)
        assert status == 200
        step_seconds, status, twiml = client.post(f"/twilio/voice/step?turn={turn}", {**call, "Digits": keys[i % 3]})
        assert status == 200 and "<Gather" in twiml, twiml
        turn += 1
        if i >= requests // 10:  # the first tenth warms up caches and connections
            bare.append(bare_seconds)
            step.append(step_seconds)
    return bare, step


def _next_step(twiml: str) -> str:
    """The path the TwiML's Gather posts the next answer to (its turn included)."""
    found = re.search(r'<Gather[^>]* action="([^"]+)"', twiml)
    assert found is not None, twiml
    return found.group(1).replace("&amp;", "&")


def _run_speech(client: Client, requests: int) -> tuple[list[float], list[float]]:
    """The spoken answer at the menu, beside the bare endpoint; an untimed 9 then returns to the menu."""
    bare: list[float] = []
    speech: list[float] = []
    call = {"CallSid": "CA" + uuid.uuid4().hex, "From": "+447700900002", "To": "+442079460000"}
    _, status, twiml = client.post("/twilio/voice", call)
    assert status == 200, twiml
    for i in range(requests + requests // 10):
        bare_seconds, status, _ = client.post("/bench/bare", call)
        assert status == 200
        speech_seconds, status, twiml = client.post(_next_step(twiml), {**call, **SPOKEN})
        assert status == 200 and "NHS number" in twiml, twiml  # understood: on to proving who the caller is
        _, status, twiml = client.post(_next_step(twiml), {**call, "Digits": "9"})  # back to the menu
        assert status == 200 and "<Gather" in twiml, twiml
        if i >= requests // 10:  # the first tenth warms up caches and connections
            bare.append(bare_seconds)
            speech.append(speech_seconds)
    return bare, speech


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--one-cpu", action="store_true", help="run the server and the client on one CPU")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DATABASE_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    if args.one_cpu:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # the server inherits it
    (bare, step), (bare_beside_speech, speech) = measure(args.requests)
    a, b = statistics.median(bare), statistics.median(step)
    print(f"requests each: {len(bare)}{' (server and client on one CPU)' if args.one_cpu else ''}")
    print(f"(a) bare Flask TwiML   median {a * 1000:.3f} ms  p99 {sorted(bare)[int(len(bare) * 0.99)] * 1000:.3f} ms")
    print(f"(b) full dialogue step median {b * 1000:.3f} ms  p99 {sorted(step)[int(len(step) * 0.99)] * 1000:.3f} ms")
    print(f"ratio (b)/(a) of medians: {b / a:.2f}  (target: at most 2.0)")
    a, c = statistics.median(bare_beside_speech), statistics.median(speech)
    p99 = sorted(speech)[int(len(speech) * 0.99)]
    print(f"(a) bare Flask TwiML, beside (c), median {a * 1000:.3f} ms")
    print(f"(c) spoken answer step median {c * 1000:.3f} ms  p99 {p99 * 1000:.3f} ms  ({SPOKEN['SpeechResult']!r} at the menu)")
    print(f"ratio (c)/(a) of medians: {c / a:.2f}  (target: at most 2.5)")


if __name__ == "__main__":
    main()
