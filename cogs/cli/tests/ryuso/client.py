"""A client of a program server written from ryuso's documented request
body only: {"program": ..., "data_pool": {...}, "metadata": {...}}, one
JSON object per line, one answer line back. Usage: client.py PORT LEDGER.
Exits 0 if every answer is as expected, 1 (saying why) otherwise."""
import json
import socket
import sys

port, ledger = int(sys.argv[1]), sys.argv[2]
sock = socket.create_connection(("127.0.0.1", port), timeout=20)
answers = sock.makefile("r", encoding="utf-8")


def run(body):
    sock.sendall((json.dumps(body) + "\n").encode("utf-8"))
    line = answers.readline()
    if not line:
        sys.exit("the server closed the connection without answering")
    return json.loads(line)


def expect(what, ok):
    if not ok:
        sys.exit("FAILED: " + what)
    print("ok: " + what)


pool = {"payer": ledger, "payee": "bo", "amount": 5, "rate": 1.5, "tags": ["x"], "extra": {"k": 1}, "refuse": False}
done = run({"program": "transfer", "data_pool": pool, "metadata": {"user": "ann"}})
expect("a transfer succeeds: " + json.dumps(done), done["status"] == "ok")
expect("its answer holds only the declared outputs", done["outputs"] == {"receipt": "5 to bo for ann", "credited": True})
expect("the answer has no id, as the request had none", done["id"] is None)

refused = dict(pool, refuse=True)
failed = run({"program": "transfer", "data_pool": refused, "metadata": {"user": "cy"}})
expect("a refused transfer is compensated: " + json.dumps(failed), failed["status"] == "compensated")
expect("the failing hook is named", failed["error"]["step"] == "confirm")
expect("the rectifiers ran in their order", [t["rectifier"] for t in failed["trace"] if "rectifier" in t] == ["undo_debit", "note_undo"])
expect("nothing but the declared outputs (none) on a failure", failed["outputs"] == {})

missing = dict(pool)
del missing["amount"]
rejected = run({"program": "transfer", "data_pool": missing, "metadata": {}})
expect("a request without a required arg is rejected: " + json.dumps(rejected), rejected["status"] == "rejected")
expect("the error names the arg", "missing required argument `amount` (int)" in rejected["error"]["message"])
sock.close()
