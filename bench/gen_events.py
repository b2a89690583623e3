#!/usr/bin/env python3
"""Writes N game events in the seed's mix (its 11 ab commands, repeated) as JSON lines,
exactly as the Flask game API logs them: usage: gen_events.py N OUT"""
import json
import sys

TRAFFIC = [(10, "user1.comcast.com", "default"), (10, "user1.comcast.com", "purchase_sword"),
           (7, "user2.att.com", "default"), (15, "user2.att.com", "purchase_shield"),
           (15, "user3.verizon.com", "purchase_sword"), (5, "user3.verizon.com", "upgrade_sword"),
           (5, "user1.comcast.com", "upgrade_sword"), (7, "user2.att.com", "upgrade_shield"),
           (20, "user4.spectrum.com", "purchase_knife"), (20, "user4.spectrum.com", "default"),
           (14, "user5.fios.com", "purchase_shield")]

n, out = int(sys.argv[1]), sys.argv[2]
cycle = []
for count, host, event_type in TRAFFIC:
    line = json.dumps({"event_type": event_type, "Host": host, "User-Agent": "ApacheBench/2.3", "Accept": "*/*"})
    cycle.extend([line] * count)
with open(out, "w") as f:
    full, rest = divmod(n, len(cycle))
    block = "\n".join(cycle) + "\n"
    for _ in range(full):
        f.write(block)
    if rest:
        f.write("\n".join(cycle[:rest]) + "\n")
