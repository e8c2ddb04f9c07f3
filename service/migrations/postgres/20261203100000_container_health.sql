-- A container's healthcheck verdict as its agent last reported it
-- (starting, healthy, unhealthy); NULL without a healthcheck or before the
-- first report. Keep in step with ../sqlite/20261203100000_container_health.sql.
ALTER TABLE containers ADD COLUMN health TEXT;
