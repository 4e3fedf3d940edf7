-- Webhook delivery: a cursor into alert_events per (enterprise, url), and every attempt logged.
CREATE TABLE webhook_cursors (
    enterprise    text NOT NULL,
    url           text NOT NULL,
    last_event_id bigint NOT NULL,
    PRIMARY KEY (enterprise, url)
);

CREATE TABLE webhook_deliveries (
    id         bigserial PRIMARY KEY,
    enterprise text NOT NULL,
    url        text NOT NULL,
    event_id   bigint NOT NULL,
    attempt    integer NOT NULL,
    status     integer,
    error      text,
    delivered  boolean NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_enterprise ON webhook_deliveries (enterprise, id DESC);
