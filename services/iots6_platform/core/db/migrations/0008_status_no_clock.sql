-- A connected device whose clock is not set reports the retained status `no_clock` (firmware 0.2, issue #15):
-- it is up, but holds its readings until it can date them. The registry keeps that state like the others.
-- (0007 is the latest-reading table.)

ALTER TABLE devices DROP CONSTRAINT IF EXISTS devices_status_check;
ALTER TABLE devices ADD CONSTRAINT devices_status_check CHECK (status IN ('online', 'offline', 'no_clock'));
