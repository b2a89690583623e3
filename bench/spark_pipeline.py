#!/usr/bin/env python3
"""The seed's own stack as a peer: the three jobs and the seed's three queries in PySpark
(local mode, all cores), from the JSON file. usage: spark_pipeline.py EVENTS_JSONL OUT_DIR"""
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

src, out = sys.argv[1], sys.argv[2]
spark = (SparkSession.builder.master("local[*]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "4").getOrCreate())
events = spark.read.json(src)
events.write.mode("overwrite").parquet(f"{out}/extracted_events")
(events.withColumn("action", F.split("event_type", "_").getItem(0))
       .write.mode("overwrite").parquet(f"{out}/transformed_events"))
(events.filter(F.col("event_type").startswith("purchase_"))
       .write.mode("overwrite").partitionBy("event_type").parquet(f"{out}/purchases"))
spark.read.parquet(f"{out}/extracted_events").createOrReplaceTempView("gamer")
spark.sql("SELECT COUNT(*) FROM gamer").collect()
spark.sql("SELECT event_type, COUNT(event_type) as event_count FROM gamer GROUP BY event_type ORDER BY event_count DESC").collect()
spark.sql("SELECT Host, COUNT(*) as number_of_player FROM gamer GROUP BY Host ORDER BY number_of_player DESC").collect()
spark.stop()
