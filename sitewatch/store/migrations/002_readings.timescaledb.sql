-- Readings and positions as TimescaleDB hypertables with compression, retention and a
-- one-minute continuous aggregate. {retention_days} is filled in by the migration runner.
CREATE TABLE readings (
    point_id integer NOT NULL,
    ts       timestamptz NOT NULL,
    value    double precision NOT NULL,
    quality  smallint NOT NULL DEFAULT 0
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX readings_point_ts ON readings (point_id, ts);
ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'point_id',
                          timescaledb.compress_orderby = 'ts');
SELECT add_compression_policy('readings', INTERVAL '2 days');
SELECT add_retention_policy('readings', INTERVAL '{retention_days} days');

CREATE MATERIALIZED VIEW readings_1m WITH (timescaledb.continuous) AS
SELECT point_id, time_bucket(INTERVAL '1 minute', ts) AS bucket,
       avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS n, last(value, ts) AS last
FROM readings GROUP BY point_id, bucket WITH NO DATA;
SELECT add_continuous_aggregate_policy('readings_1m', start_offset => INTERVAL '1 day',
       end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');

CREATE TABLE positions (
    site_id integer NOT NULL,
    ts      timestamptz NOT NULL,
    tag     text NOT NULL,
    kind    smallint NOT NULL,
    zone    text
);
SELECT create_hypertable('positions', 'ts', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX positions_site_ts ON positions (site_id, ts);
SELECT add_retention_policy('positions', INTERVAL '{retention_days} days');
