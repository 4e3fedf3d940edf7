-- The hazard ledger (隐患台账): major hazards found by the enterprise's own checks (the monitoring
-- system counts as one), by department inspection, or listed for government supervision, each
-- rectified with a note and a date. The regulators' monthly dispatch table counts them.
CREATE TABLE hazards (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id            integer NOT NULL REFERENCES sites (id),
    alert_id           uuid REFERENCES alerts (id),
    source             text NOT NULL CHECK (source IN ('self_check', 'inspection', 'supervision')),
    title              text NOT NULL,
    description        text NOT NULL DEFAULT '',
    found_at           timestamptz NOT NULL,
    found_by           text NOT NULL,
    rectified_at       timestamptz,
    rectified_by       text,
    rectification_note text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hazards_site_found ON hazards (site_id, found_at);
CREATE UNIQUE INDEX hazards_one_per_alert ON hazards (alert_id) WHERE alert_id IS NOT NULL;
