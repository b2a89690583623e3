#!/usr/bin/env python3
"""The seed's own stack as the peer, on real servers: the seed's three Spark jobs, each reading
the Kafka topic from its earliest to its latest offsets with Spark's Kafka source and writing
Parquet to HDFS, then the seed's three queries. Needs spark.jars for the Kafka source
(`mvn -f testinfra/pom.xml -Pspark package`). usage: spark_kafka_pipeline.py BROKERS TOPIC HDFS_URL JARS"""
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

brokers, topic, hdfs, jars = sys.argv[1:5]
spark = (SparkSession.builder.master("local[*]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "4").config("spark.jars", jars)
         .config("spark.hadoop.fs.defaultFS", hdfs).getOrCreate())
spark.sparkContext.setLogLevel("ERROR")


def events():
    """One job's read: the whole topic, values decoded as the seed's jobs decode them."""
    raw = (spark.read.format("kafka").option("kafka.bootstrap.servers", brokers)
           .option("subscribe", topic).option("startingOffsets", "earliest")
           .option("endingOffsets", "latest").load())
    return spark.read.json(raw.select(raw.value.cast("string")).rdd.map(lambda r: r.value))


# extract_events.py
events().write.mode("overwrite").parquet("/tmp/extracted_events")
# transform_events.py
(events().withColumn("action", F.split("event_type", "_").getItem(0))
         .write.mode("overwrite").parquet("/tmp/transformed_events"))
# filtered_writes.py
(events().filter(F.col("event_type").startswith("purchase_"))
         .write.mode("overwrite").partitionBy("event_type").parquet("/tmp/purchases"))
gamer = spark.read.parquet("/tmp/extracted_events")
gamer.createOrReplaceTempView("gamer")
print("spark: extracted_events rows:", spark.sql("SELECT COUNT(*) FROM gamer").collect()[0][0], file=sys.stderr)
spark.sql("SELECT event_type, COUNT(event_type) as event_count FROM gamer GROUP BY event_type ORDER BY event_count DESC").collect()
spark.sql("SELECT Host, COUNT(*) as number_of_player FROM gamer GROUP BY Host ORDER BY number_of_player DESC").collect()
spark.stop()
