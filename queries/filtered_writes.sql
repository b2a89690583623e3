-- bnetl: table=purchases partition_by=event_type
-- filtered_writes: purchase events only (purchase_sword, purchase_shield, purchase_knife, ...).
-- Input tables: events (every JSON field of the topic's events, then timestamp, partition, offset)
-- Output columns: the same as events; written to the table purchases, Hive-partitioned by
--   event_type (purchases/event_type=purchase_sword/part-....parquet), as Spark's partitionBy.
SELECT *
FROM events
WHERE starts_with(event_type, 'purchase_')
