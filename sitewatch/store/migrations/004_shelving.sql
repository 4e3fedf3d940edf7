-- ISA-18.2 shelving: an operator hides a chattering or known-bad source for a stated reason and a
-- bounded time; the alert is still recorded, and unshelved automatically (audited) on expiry.
ALTER TABLE alerts ADD COLUMN shelved_until timestamptz;
CREATE INDEX alerts_shelved ON alerts (shelved_until) WHERE shelved_until IS NOT NULL;
