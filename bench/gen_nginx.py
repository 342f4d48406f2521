#!/usr/bin/env python3
"""Writes N access-log lines in nginx's `combined` format, deterministic.

    python3 bench/gen_nginx.py N OUT

    log_format combined '$remote_addr - $remote_user [$time_local] '
                        '"$request" $status $body_bytes_sent '
                        '"$http_referer" "$http_user_agent"';

Mixed in as nginx writes them: IPv6 clients, `-` for an absent user or
referer, a `"` inside a variable escaped as `\\x22`, now and then a request
line that is not HTTP (a probe sending garbage), sizes of 0.
"""
import random
import sys

METHODS = ["GET"] * 8 + ["POST", "HEAD", "PUT", "DELETE"]
PATHS = ["/", "/index.html", "/api/v1/users", "/api/v1/orders?page=2&size=50", "/static/app.js",
         "/img/logo.png", "/login", "/search?q=caf%C3%A9", "/health", "/favicon.ico"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "python-requests/2.31 \\x22quoted\\x22",
]
REFERERS = ["-", "https://example.com/", "https://example.com/search?q=x", "-", "-"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def client(r):
    if r.random() < 0.15:
        return "2001:db8:%x::%x" % (r.randrange(1 << 16), r.randrange(1 << 16))
    return "%d.%d.%d.%d" % (r.randrange(1, 224), r.randrange(256), r.randrange(256), r.randrange(1, 255))


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    r = random.Random(14)
    with open(out, "w") as f:
        for i in range(n):
            t = "%02d/%s/2026:%02d:%02d:%02d +0000" % (
                1 + i // 86400 % 28, MONTHS[10], i // 3600 % 24, i // 60 % 60, i % 60)
            if r.random() < 0.002:
                request = "\\x16\\x03\\x01\\x00"
                status, size = 400, 157
            else:
                request = "%s %s HTTP/1.1" % (r.choice(METHODS), r.choice(PATHS))
                status = r.choice([200] * 12 + [301, 304, 404, 500])
                size = 0 if status == 304 else r.randrange(0, 50000)
            user = "-" if r.random() < 0.9 else "alice"
            f.write('%s - %s [%s] "%s" %d %d "%s" "%s"\n' % (
                client(r), user, t, request, status, size, r.choice(REFERERS), r.choice(AGENTS)))


if __name__ == "__main__":
    main()
