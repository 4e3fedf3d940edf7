-- Catalog, alert store, dead letters, tokens: tables that do not depend on the storage mode.

CREATE TABLE storage_info (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE enterprises (
    code       text PRIMARY KEY,
    name       text NOT NULL,
    extra      jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sites (
    id             serial PRIMARY KEY,
    code           text NOT NULL UNIQUE,
    enterprise     text NOT NULL REFERENCES enterprises (code),
    name           text NOT NULL,
    kind           text NOT NULL,
    timezone       text NOT NULL DEFAULT 'Asia/Shanghai',
    state          text NOT NULL DEFAULT 'operating',
    shift_capacity integer,
    extra          jsonb NOT NULL DEFAULT '{}',
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateways (
    id            serial PRIMARY KEY,
    site_id       integer NOT NULL REFERENCES sites (id),
    code          text NOT NULL,
    password_hash text NOT NULL,
    extra         jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, code)
);

CREATE TABLE zones (
    id         serial PRIMARY KEY,
    site_id    integer NOT NULL REFERENCES sites (id),
    code       text NOT NULL,
    name       text NOT NULL DEFAULT '',
    risk       text NOT NULL DEFAULT 'normal',
    max_people integer,
    extra      jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, code)
);

-- points.id is the dense point id the readings table and the evaluator's state arrays use.
CREATE TABLE points (
    id         serial PRIMARY KEY,
    site_id    integer NOT NULL REFERENCES sites (id),
    code       text NOT NULL,
    kind       text NOT NULL,
    unit       text NOT NULL DEFAULT '',
    period_s   double precision NOT NULL DEFAULT 60,
    pair       text,
    rules      jsonb NOT NULL DEFAULT '[]',
    rules_set  boolean NOT NULL DEFAULT false,  -- true when the document gave rules, false for kind defaults
    extra      jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, code)
);

CREATE TABLE tags (
    id         serial PRIMARY KEY,
    site_id    integer NOT NULL REFERENCES sites (id),
    code       text NOT NULL,
    person     text NOT NULL DEFAULT '',
    extra      jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, code)
);

-- One row per accepted MQTT message: the idempotence key (site, gateway, seq) of PROTOCOL §1.
CREATE TABLE ingest_messages (
    site_id     integer NOT NULL,
    gateway     text NOT NULL,
    seq         bigint NOT NULL,
    channel     smallint NOT NULL,          -- 0 telemetry, 1 positions
    n_items     integer NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, gateway, seq)
);
CREATE INDEX ingest_messages_received ON ingest_messages (received_at);

CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    site        text,
    gateway     text,
    topic       text NOT NULL,
    seq         bigint,
    reason      text NOT NULL,
    detail      text NOT NULL,
    item        text                       -- the rejected reading or event, or the (truncated) message
);
CREATE INDEX dead_letters_site_time ON dead_letters (site, received_at DESC);

CREATE TABLE alerts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id         integer NOT NULL REFERENCES sites (id),
    source_type     text NOT NULL,
    source_code     text NOT NULL,
    rule            text NOT NULL,
    kind            text,
    severity        smallint NOT NULL CHECK (severity BETWEEN 1 AND 4),
    state           text NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'acknowledged', 'handled', 'closed')),
    cleared         boolean NOT NULL DEFAULT false,
    value           double precision,
    peak            double precision,
    count           integer NOT NULL DEFAULT 1,
    message         text NOT NULL DEFAULT '',
    details         jsonb NOT NULL DEFAULT '{}',
    raised_at       timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    overdue         boolean NOT NULL DEFAULT false,
    acknowledged_at timestamptz,
    handled_at      timestamptz,
    closed_at       timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- One open alert per (source, rule): DOMAIN §3.
CREATE UNIQUE INDEX alerts_one_open ON alerts (site_id, source_type, source_code, rule) WHERE state <> 'closed';
CREATE INDEX alerts_site_raised ON alerts (site_id, raised_at DESC);

CREATE TABLE alert_history (
    id         bigserial PRIMARY KEY,
    alert_id   uuid NOT NULL REFERENCES alerts (id),
    at         timestamptz NOT NULL,
    action     text NOT NULL,
    actor      text NOT NULL,
    note       text NOT NULL DEFAULT '',
    state_from text,
    state_to   text,
    data       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, id);

CREATE TABLE api_tokens (
    id         serial PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    name       text NOT NULL DEFAULT '',
    role       text NOT NULL CHECK (role IN ('admin', 'operator', 'enterprise')),
    enterprise text REFERENCES enterprises (code),
    sites      text[],                    -- NULL: every site the role may see
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
