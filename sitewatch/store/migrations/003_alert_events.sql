-- Every alert change, as pushed on MQTT, in order: what GET /alerts/stream serves and resumes from
-- (the SSE event id is the row id, so a screen that reconnects with Last-Event-ID misses nothing).
CREATE TABLE alert_events (
    id       bigserial PRIMARY KEY,
    site_id  integer NOT NULL,
    alert_id uuid NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    body     jsonb NOT NULL
);
CREATE INDEX alert_events_site ON alert_events (site_id, id);

-- The same-day clock looks for alerts coming due and red alerts nobody acknowledged, every second.
CREATE INDEX alerts_coming_due ON alerts (due_at) WHERE NOT overdue AND state <> 'closed';
CREATE INDEX alerts_open_red ON alerts (raised_at) WHERE severity = 4 AND state = 'open';
