"""Small-call latency of two pachds side by side, from one process.

Usage: paired_calls.py PORT_A PORT_B N BATCH [START]
  Env: PAIRED_B_TOKEN (B's auth token), PAIRED_B_CA (B serves TLS: its CA).
One python-pachyderm 3.1.0 client per pachd sends InspectRepo("big") in
batches of BATCH calls to each in turn (the order swapped every round), so
that the machine's load, which moves a lone client's latency by half, falls
on both alike. START (a Unix time): wait for it once both are connected, so
that clients started together run together. Prints the median of each
side's batch means, in microseconds: "A B".
"""
import os
import statistics
import sys
import time

import pypach_compat  # noqa: F401
import python_pachyderm

port_a, port_b, n, batch = (int(x) for x in sys.argv[1:5])
a = python_pachyderm.Client("127.0.0.1", port_a)
options = {}
if os.environ.get("PAIRED_B_TOKEN"):
    options["auth_token"] = os.environ["PAIRED_B_TOKEN"]
if os.environ.get("PAIRED_B_CA"):
    with open(os.environ["PAIRED_B_CA"], "rb") as f:
        options.update(tls=True, root_certs=f.read())
b = python_pachyderm.Client("127.0.0.1", port_b, **options)
a.inspect_repo("big"), b.inspect_repo("big")  # connect (and handshake) first
if len(sys.argv) > 5:
    time.sleep(max(0.0, float(sys.argv[5]) - time.time()))


def mean_us(c):
    t0 = time.perf_counter()
    for _ in range(batch):
        c.inspect_repo("big")
    return (time.perf_counter() - t0) / batch * 1e6


ta, tb = [], []
for r in range(max(2, n // batch)):
    if r % 2 == 0:
        ta.append(mean_us(a))
        tb.append(mean_us(b))
    else:
        tb.append(mean_us(b))
        ta.append(mean_us(a))
print(f"{statistics.median(ta):.0f} {statistics.median(tb):.0f}")
