-- Site-sharded workers (docs/scaling.md): the shard that owns each site, and the worker process
-- holding each shard's lease (renewed every second; another worker takes an expired one over).
CREATE TABLE site_shards (
    site_id integer PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    shard   integer NOT NULL
);

CREATE TABLE shard_leases (
    service    text NOT NULL,
    shard      integer NOT NULL,
    owner      text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (service, shard)
);
