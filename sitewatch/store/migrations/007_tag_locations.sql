-- Each tag's latest position (DOMAIN §2.1), what the live headcount per zone is read from. The
-- ingest writer keeps it in the transaction that stores the positions rows, with the semantics of
-- the positioning rules (sitewatch.store.tag_locations): events in event-time order, one not newer
-- than the tag's `ts` changes nothing; `locate` puts the tag in `zone`, `exit` takes it off site
-- (zone NULL), `sos` locates it when it names a zone and keeps its zone otherwise. `since` is when
-- the tag entered its current zone (or left the site).
CREATE TABLE tag_locations (
    site_id integer NOT NULL,
    tag     text NOT NULL,
    ts      timestamptz NOT NULL,            -- its latest accepted event
    zone    text,                            -- NULL: off site
    since   timestamptz NOT NULL,
    PRIMARY KEY (site_id, tag)
);
CREATE INDEX tag_locations_zone ON tag_locations (site_id, zone) WHERE zone IS NOT NULL;

-- Backfill from the positions kept so far. The arrival order of one tag's events at the same
-- millisecond is not stored: the lowest kind stands for the first. `setter` numbers the events
-- that decide the zone (all but an sos without one), `at` is the zone after each event, and a run
-- is a stretch of events in the same zone: `since` is the start of the last run.
INSERT INTO tag_locations (site_id, tag, ts, zone, since)
WITH events AS (
    SELECT DISTINCT ON (site_id, tag, ts) site_id, tag, ts, kind, zone
    FROM positions ORDER BY site_id, tag, ts, kind
), numbered AS (
    SELECT *, count(*) FILTER (WHERE kind <> 2 OR zone IS NOT NULL)
                  OVER (PARTITION BY site_id, tag ORDER BY ts) AS setter
    FROM events
), located AS (
    SELECT site_id, tag, ts,
           first_value(CASE WHEN kind = 1 THEN NULL ELSE zone END)
               OVER (PARTITION BY site_id, tag, setter ORDER BY ts) AS at
    FROM numbered
), changes AS (
    SELECT *, at IS DISTINCT FROM lag(at) OVER (PARTITION BY site_id, tag ORDER BY ts) AS moved
    FROM located
), runs AS (
    SELECT *, count(*) FILTER (WHERE moved) OVER (PARTITION BY site_id, tag ORDER BY ts) AS run
    FROM changes
)
SELECT DISTINCT ON (site_id, tag) site_id, tag, ts, at, min(ts) OVER (PARTITION BY site_id, tag, run)
FROM runs ORDER BY site_id, tag, ts DESC;
