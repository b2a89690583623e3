#!/usr/bin/env python3
"""Prints the median (and range) of each command in hyperfine JSON exports, and the ratio of the
first command's median to each other's (a peer in the same run). usage: medians.py FILE.json..."""
import json
import sys

for path in sys.argv[1:]:
    results = json.load(open(path))["results"]
    base = results[0]["median"]
    for r in results:
        line = f"  {r['command'][:60]:60} median {r['median']:.3f} s  (min {r['min']:.3f}, max {r['max']:.3f}, {len(r['times'])} runs)"
        if r is not results[0]:
            line += f"  {results[0]['command'][:12]}/this = {base / r['median']:.2f}"
        print(line)
