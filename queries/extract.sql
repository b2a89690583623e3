-- bnetl: table=extracted_events
-- extract: the decoded events, one row per event.
-- Input tables: events (every JSON field of the topic's events, then timestamp, partition, offset)
-- Output columns: the same; written to the table extracted_events.
SELECT * FROM events
