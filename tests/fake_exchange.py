"""A local HTTP server on loopback that answers like Binance's spot REST API from recorded
responses: the klines of the ADA/BTC 1-minute dumps in data/sample (real exchange data), a
minimal exchangeInfo, and scripted failures (HTTP 429 rate limits, 503s, reordered candles)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def recorded_klines() -> list[list]:
    """The Binance kline rows of both ADA/BTC dumps, as the REST API returns them."""
    rows = []
    for f in ("ADABTC-1m-2021-11-27.csv", "ADABTC-1m-2021-11-28.csv"):
        for line in (SAMPLE / f).read_text().splitlines():
            c = line.split(",")
            rows.append([int(c[0]), c[1], c[2], c[3], c[4], c[5], int(c[6]), c[7], int(c[8]),
                         c[9], c[10], c[11]])  # fmt: skip
    return rows


EXCHANGE_INFO = {
    "timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [],
    "symbols": [{
        "symbol": "ADABTC", "status": "TRADING", "baseAsset": "ADA", "baseAssetPrecision": 8,
        "quoteAsset": "BTC", "quotePrecision": 8, "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"], "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False, "filters": [], "permissions": ["SPOT"],
    }],
}  # fmt: skip


class FakeBinance:
    """``visible`` = how many recorded candles the "exchange" has produced so far (the last
    visible one is still forming); ``script`` = a queue of responses for the next klines
    requests: ``"429"``, ``"503"``, ``"reorder"``, ``"stale-revised"`` (the candles from the
    first again, the first one's close changed) or None (normal)."""

    def __init__(self) -> None:
        self.rows = recorded_klines()
        self.visible = 0
        self.script: list[str | None] = []
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                u = urlparse(self.path)
                fake.requests.append(u.path)
                status, body = 200, {}
                if u.path.endswith("/exchangeInfo"):
                    body = EXCHANGE_INFO
                elif u.path.endswith("/klines"):
                    q = parse_qs(u.query)
                    step = fake.script.pop(0) if fake.script else None
                    start = int(q.get("startTime", ["0"])[0])
                    limit = int(q.get("limit", ["500"])[0])
                    rows = [r for r in fake.rows[: fake.visible] if r[0] >= start][:limit]
                    if step == "429":
                        status, body = 429, {"code": -1003, "msg": "Too many requests"}
                    elif step == "503":
                        status, body = 503, {"code": -1001, "msg": "Service unavailable"}
                    elif step == "reorder":
                        body = rows[::-1]
                    elif step == "stale-revised":  # old candles again, one price changed
                        body = [list(r) for r in fake.rows[: fake.visible]]
                        body[0][4] = "0.00009999"
                    else:
                        body = rows
                b = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
