-- Readings and positions in native range partitions, one per UTC day (sitewatch.store.partitions
-- creates them ahead of time and drops them by retention).
CREATE TABLE readings (
    point_id integer NOT NULL,
    ts       timestamptz NOT NULL,
    value    double precision NOT NULL,
    quality  smallint NOT NULL DEFAULT 0      -- 0 good, 1 uncertain, 2 bad
) PARTITION BY RANGE (ts);
CREATE INDEX readings_point_ts ON readings (point_id, ts);

CREATE TABLE positions (
    site_id integer NOT NULL,
    ts      timestamptz NOT NULL,
    tag     text NOT NULL,
    kind    smallint NOT NULL,               -- 0 locate, 1 exit, 2 sos
    zone    text
) PARTITION BY RANGE (ts);
CREATE INDEX positions_site_ts ON positions (site_id, ts);
