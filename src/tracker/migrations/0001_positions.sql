-- Every position the tracker has stored, one row per (aircraft, position time): a redelivered Kafka
-- record hits the primary key and is skipped (INSERT ... ON CONFLICT DO NOTHING), so history is exact.
-- Partitioned by day so retention drops whole partitions instead of deleting rows; with TimescaleDB
-- (docker-compose) the same table is a hypertable with one-day chunks instead.
DO $migration$
DECLARE
    columns text := $cols$
        icao24          text             NOT NULL,
        time_position   timestamptz      NOT NULL,
        last_contact    timestamptz      NOT NULL,
        callsign        text,
        origin_country  text,
        longitude       double precision,
        latitude        double precision,
        baro_altitude   real,
        geo_altitude    real,
        on_ground       boolean          NOT NULL,
        velocity        real,
        true_track      real,
        vertical_rate   real,
        squawk          text,
        category        smallint,
        position_source smallint,
        source          text,
        kafka_partition integer          NOT NULL,
        kafka_offset    bigint           NOT NULL,
        ingested_at     timestamptz      NOT NULL DEFAULT now(),
        PRIMARY KEY (icao24, time_position)
    $cols$;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXECUTE 'CREATE TABLE positions (' || columns || ')';
        PERFORM create_hypertable('positions', 'time_position', chunk_time_interval => INTERVAL '1 day');
    ELSE
        EXECUTE 'CREATE TABLE positions (' || columns || ') PARTITION BY RANGE (time_position)';
    END IF;
END
$migration$;

