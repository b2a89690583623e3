#!/usr/bin/env python3
"""Runs commands in turn, one run each per round, for N rounds, and prints each one's median
and the first command's ratio to each other's. A machine whose speed drifts within minutes
slows every command of a round alike, where hyperfine's blocks of runs of one command at a
time can catch a slow phase for one command only. usage: interleave.py N NAME=COMMAND..."""
import statistics
import subprocess
import sys
import time

rounds = int(sys.argv[1])
named = [arg.split("=", 1) for arg in sys.argv[2:]]
times = {name: [] for name, _ in named}
for _ in range(rounds):
    for name, command in named:
        start = time.perf_counter()
        subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - start)
first = named[0][0]
base = statistics.median(times[first])
for name, _ in named:
    runs = times[name]
    line = f"  {name:20} median {statistics.median(runs):.3f} s  (min {min(runs):.3f}, max {max(runs):.3f}, {len(runs)} rounds)"
    if name != first:
        line += f"  {first}/this = {base / statistics.median(runs):.2f}"
    print(line)
