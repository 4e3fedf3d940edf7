-- Access control (docs/security.md): API tokens as salted hashes that can expire, and the audit log
-- of every state-changing API request.

-- A token is stored as `hash` = HMAC-SHA256(key = `salt`, message = SHA-256 of the whole token
-- string), with a random 32-byte `salt` of its own. Tokens issued before this migration were stored
-- as the bare SHA-256 in `token_hash`: that digest is exactly the HMAC's message, so they are
-- re-keyed here without their plaintext and keep working. They carry no id (`sw_{id}.{secret}`),
-- so `legacy` marks the rows a token without one is checked against.
CREATE FUNCTION pg_temp.hmac_sha256(key bytea, msg bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k    bytea := CASE WHEN length(key) > 64 THEN sha256(key) ELSE key END;
    ipad bytea;
    opad bytea;
BEGIN
    k := k || decode(repeat('00', 64 - length(k)), 'hex');
    ipad := k;
    opad := k;
    FOR i IN 0..63 LOOP
        ipad := set_byte(ipad, i, get_byte(k, i) # 54);   -- 0x36
        opad := set_byte(opad, i, get_byte(k, i) # 92);   -- 0x5c
    END LOOP;
    RETURN sha256(opad || sha256(ipad || msg));
END
$$;

ALTER TABLE api_tokens
    ADD COLUMN salt       bytea,
    ADD COLUMN hash       bytea,
    ADD COLUMN legacy     boolean NOT NULL DEFAULT false,
    ADD COLUMN expires_at timestamptz;
-- gen_random_uuid() draws from the server's strong random source; two make 244 random bits.
UPDATE api_tokens SET salt = uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), legacy = true;
UPDATE api_tokens SET hash = pg_temp.hmac_sha256(salt, decode(token_hash, 'hex'));
ALTER TABLE api_tokens
    DROP COLUMN token_hash,
    ALTER COLUMN salt SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL;
CREATE INDEX api_tokens_legacy ON api_tokens (id) WHERE legacy;
DROP FUNCTION pg_temp.hmac_sha256(bytea, bytea);

-- Every POST/PUT/PATCH/DELETE under /api/v1, allowed or refused: who (the token, when it could be
-- identified), when it arrived, what (method, path, route template, answer), from where, and a
-- summary that never holds a secret (no request body beyond a few named fields).
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    token_id   integer,
    token_name text,
    role       text,
    method     text NOT NULL,
    path       text NOT NULL,
    route      text,
    status     smallint NOT NULL,
    client     text,
    summary    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_token ON audit_log (token_id, at DESC);
