-- bnetl: table=transformed_events
-- transform: events with the columns analysts ask for first.
-- Input tables: events (every JSON field of the topic's events, then timestamp, partition, offset)
-- Output columns: event_date (DATE of the record timestamp, UTC), action ('purchase', 'upgrade',
--   'join', or the whole event_type when it has no '_', e.g. 'default'), item ('sword', 'shield',
--   'knife', 'guild'; NULL when event_type has no '_'), then every input column.
-- Written to the table transformed_events.
SELECT
    CAST("timestamp" AS DATE) AS event_date,
    split_part(event_type, '_', 1) AS action,
    CASE
        WHEN strpos(event_type, '_') > 0 THEN substr(event_type, strpos(event_type, '_') + 1)
    END AS item,
    *
FROM events
