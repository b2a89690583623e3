#!/usr/bin/env python3
"""The other peer: the same three jobs and the seed's three queries in Polars, from the JSON file.
usage: polars_pipeline.py EVENTS_JSONL OUT_DIR"""
import os
import shutil
import sys

import polars as pl

src, out = sys.argv[1], sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
events = pl.read_ndjson(src)
events.write_parquet(f"{out}/extracted_events.parquet", compression="snappy")
split = pl.col("event_type").str.splitn("_", 2)
events.select(split.struct.field("field_0").alias("action"), split.struct.field("field_1").alias("item"),
              pl.all()).write_parquet(f"{out}/transformed_events.parquet", compression="snappy")
events.filter(pl.col("event_type").str.starts_with("purchase_")).write_parquet(
    f"{out}/purchases", compression="snappy", partition_by="event_type")
t = pl.scan_parquet(f"{out}/extracted_events.parquet")
t.select(pl.len()).collect()
t.group_by("event_type").agg(pl.len().alias("c")).sort("c", descending=True).collect()
t.group_by("Host").agg(pl.len().alias("c")).sort("c", descending=True).collect()
