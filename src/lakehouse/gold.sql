-- Silver and gold from the lake for ONE UTC day (seed 001's layers), in DuckDB SQL. Run in order by
-- lakehouse/gold.py, which first makes `day_positions`: the lake's raw `positions` rows of that day.
-- Each `-- view:` becomes a temporary view, each `-- table:` an Iceberg table of the lake's namespace
-- (that day's partition overwritten, so a rerun gives the same tables).
--
-- Definitions (docs/LAKE.md repeats them):
--   positions_clean  the rules of the tracker's positions_clean view (src/tracker/migrations/0010_analytics.sql),
--                    after keeping ONE row per (icao24, time_position): the first archived (ingested_at, then
--                    partition and offset), as the tracker's primary key keeps the first insert.
--   aircraft         distinct icao24 with at least one clean position in the group.
--   airline          the ICAO designator of a callsign like "DLH4AB" (3 letters then a digit), as 0010's
--                    airline_prefix(); registrations ("DEABC", "N123AB") have none and are left out.
--   flight_hours     per aircraft, the time from each clean position to its next one, counted only when both
--                    are airborne (on_ground false) and they are at most 10 minutes apart; a longer gap is a
--                    coverage hole or a landing we did not see, so it adds nothing. Each interval belongs to
--                    the group of the position it starts from. Intervals stop at midnight UTC (a day's job
--                    never reads the next day), so an aircraft flying across midnight loses at most one
--                    interval of <= 10 minutes.

-- table: positions_clean
WITH numbered AS (
    SELECT *,
           row_number() OVER (PARTITION BY icao24, time_position
                              ORDER BY ingested_at, kafka_partition, kafka_offset) AS copy_number
    FROM day_positions
)
SELECT icao24,
       time_position,
       NULLIF(upper(trim(callsign)), '') AS callsign,
       COALESCE(NULLIF(trim(origin_country), ''), 'Unknown') AS origin_country,
       longitude,
       latitude,
       baro_altitude,
       geo_altitude,
       on_ground,
       velocity,
       true_track,
       vertical_rate,
       category,
       source
FROM numbered
WHERE copy_number = 1
  AND regexp_full_match(icao24, '[0-9a-f]{6}')
  AND latitude BETWEEN -90 AND 90
  AND longitude BETWEEN -180 AND 180
  AND NOT (latitude = 0 AND longitude = 0)                              -- "null island": an unset position
  AND (baro_altitude IS NULL OR baro_altitude BETWEEN -460 AND 18300)   -- Dead Sea shore .. 60,000 ft
  AND (velocity IS NULL OR velocity BETWEEN 0 AND 700)                  -- m/s; beyond Mach 2 is a decoding error
  AND (true_track IS NULL OR true_track BETWEEN 0 AND 360)
  AND (vertical_rate IS NULL OR abs(vertical_rate) <= 160)              -- m/s, about 31,000 ft/min
ORDER BY icao24, time_position;

-- view: day_flight
-- Each clean position of the day with its airline and the airborne seconds up to the aircraft's next position.
SELECT time_position,
       icao24,
       origin_country,
       category,
       CASE WHEN regexp_matches(callsign, '^[A-Z]{3}[0-9]') THEN substr(callsign, 1, 3) END AS airline,
       CASE WHEN NOT on_ground AND NOT next_on_ground
                 AND epoch_us(next_time) - epoch_us(time_position) <= 600 * 1000000
            THEN (epoch_us(next_time) - epoch_us(time_position)) / 1e6
            ELSE 0.0 END AS airborne_s
FROM (
    SELECT *,
           lead(time_position) OVER (PARTITION BY icao24 ORDER BY time_position) AS next_time,
           lead(on_ground) OVER (PARTITION BY icao24 ORDER BY time_position) AS next_on_ground
    FROM day_clean
) AS with_next;

-- view: category_names
-- OpenSky's ADS-B emitter categories, named as the map names them (src/tracker/web/js/formatter.js).
SELECT * FROM (VALUES
    (0, 'No information'), (1, 'No category'), (2, 'Light'), (3, 'Small'), (4, 'Large'),
    (5, 'High-vortex large'), (6, 'Heavy'), (7, 'High performance'), (8, 'Rotorcraft'), (9, 'Glider'),
    (10, 'Lighter than air'), (11, 'Parachutist'), (12, 'Ultralight'), (13, 'Reserved'), (14, 'Drone (UAV)'),
    (15, 'Space vehicle'), (16, 'Emergency vehicle'), (17, 'Service vehicle'), (18, 'Point obstacle'),
    (19, 'Cluster obstacle'), (20, 'Line obstacle')
) AS names(category, category_name);

-- table: gold_daily_country
SELECT CAST(time_position AS DATE) AS day,
       origin_country AS country,
       count(DISTINCT icao24) AS aircraft,
       count(*) AS positions,
       sum(airborne_s) / 3600.0 AS flight_hours
FROM day_flight
GROUP BY 1, 2
ORDER BY 1, 2;

-- table: gold_daily_airline
SELECT CAST(time_position AS DATE) AS day,
       airline,
       count(DISTINCT icao24) AS aircraft,
       count(*) AS positions,
       sum(airborne_s) / 3600.0 AS flight_hours
FROM day_flight
WHERE airline IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2;

-- table: gold_daily_category
-- A position without a category is its own row (category NULL, "Unknown").
SELECT f.day,
       f.category,
       COALESCE(n.category_name, 'Unknown') AS category_name,
       f.aircraft,
       f.positions,
       f.flight_hours
FROM (
    SELECT CAST(time_position AS DATE) AS day,
           category,
           count(DISTINCT icao24) AS aircraft,
           count(*) AS positions,
           sum(airborne_s) / 3600.0 AS flight_hours
    FROM day_flight
    GROUP BY 1, 2
) AS f
LEFT JOIN category_names AS n ON n.category = f.category
ORDER BY f.day, f.category NULLS LAST;

-- table: gold_hourly
-- Every hour of the day that has positions; busiest_rank 1 is the hour with the most aircraft (ties: more
-- positions, then the earlier hour). "The busiest hours" are the rows with the lowest ranks.
SELECT day, hour, aircraft, positions, flight_hours,
       row_number() OVER (ORDER BY aircraft DESC, positions DESC, hour) AS busiest_rank
FROM (
    SELECT CAST(time_position AS DATE) AS day,
           date_trunc('hour', time_position) AS hour,
           count(DISTINCT icao24) AS aircraft,
           count(*) AS positions,
           sum(airborne_s) / 3600.0 AS flight_hours
    FROM day_flight
    GROUP BY 1, 2
) AS hourly
ORDER BY hour;

-- table: gold_top_categories_per_country
-- Seed 001 ranks aircraft models per country; OpenSky's state vectors carry no model, so the ADS-B emitter
-- category stands in. Ranked by distinct aircraft (ties: more positions, then the lower category). Positions
-- with no category information (NULL, 0 "No information", 1 "No category") are not a category and not ranked.
SELECT r.day, r.country, r.category_rank, r.category, n.category_name, r.aircraft, r.positions
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY day, country ORDER BY aircraft DESC, positions DESC, category)
               AS category_rank
    FROM (
        SELECT CAST(time_position AS DATE) AS day,
               origin_country AS country,
               category,
               count(DISTINCT icao24) AS aircraft,
               count(*) AS positions
        FROM day_flight
        WHERE category >= 2
        GROUP BY 1, 2, 3
    ) AS per_category
) AS r
LEFT JOIN category_names AS n ON n.category = r.category
WHERE r.category_rank <= 3
ORDER BY r.day, r.country, r.category_rank;
