#!/usr/bin/env python3
"""The peer: the same three jobs and the seed's three queries in DuckDB, from the JSON file.
usage: duckdb_pipeline.py EVENTS_JSONL OUT_DIR"""
import os
import shutil
import sys

import duckdb

src, out = sys.argv[1], sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
con = duckdb.connect()
con.execute(f"CREATE VIEW events AS SELECT * FROM read_json('{src}', format='newline_delimited')")
con.execute(f"COPY (SELECT * FROM events) TO '{out}/extracted_events.parquet' (FORMAT parquet, COMPRESSION snappy)")
con.execute(f"""COPY (SELECT split_part(event_type, '_', 1) AS action,
                   CASE WHEN strpos(event_type, '_') > 0 THEN substr(event_type, strpos(event_type, '_') + 1) END AS item, *
                   FROM events) TO '{out}/transformed_events.parquet' (FORMAT parquet, COMPRESSION snappy)""")
con.execute(f"COPY (SELECT * FROM events WHERE starts_with(event_type, 'purchase_')) TO '{out}/purchases' "
            "(FORMAT parquet, COMPRESSION snappy, PARTITION_BY (event_type))")
t = f"read_parquet('{out}/extracted_events.parquet')"
con.execute(f"SELECT COUNT(*) FROM {t}").fetchall()
con.execute(f"SELECT event_type, COUNT(event_type) AS c FROM {t} GROUP BY 1 ORDER BY c DESC").fetchall()
con.execute(f"SELECT Host, COUNT(*) AS c FROM {t} GROUP BY 1 ORDER BY c DESC").fetchall()
