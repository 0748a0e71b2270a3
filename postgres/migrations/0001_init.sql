-- Source data (SPEC section 3) and access control. Money is integer cents;
-- times are timestamptz.

CREATE TABLE merchants (
    id       text PRIMARY KEY,
    name     text NOT NULL,
    timezone text NOT NULL,
    currency text NOT NULL CHECK (length(currency) = 3)
);

CREATE TABLE locations (
    id          text PRIMARY KEY,
    merchant_id text NOT NULL REFERENCES merchants (id),
    name        text NOT NULL,
    classifier  text NOT NULL
);

CREATE INDEX locations_merchant_id_idx ON locations (merchant_id);

-- orders, order_items and transactions carry no foreign keys: they are the
-- big tables, loaded in bulk by COPY, and a foreign key costs a lookup per
-- row on load. The seed and the systems that feed them keep the references
-- consistent; the small tables above and below keep theirs.

CREATE TABLE orders (
    id           bigint PRIMARY KEY,
    merchant_id  text NOT NULL,
    location_id  text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    state        text NOT NULL,
    currency     text NOT NULL,
    subtotal     bigint NOT NULL,
    tax          bigint NOT NULL,
    tip          bigint,
    total        bigint NOT NULL,
    customer_ref text,
    note         text
);

-- The export's keyset scan: one merchant, in (created_at, id) order.
CREATE INDEX orders_merchant_created_idx ON orders (merchant_id, created_at, id);

CREATE TABLE order_items (
    order_id   bigint NOT NULL,
    line       integer NOT NULL,
    sku        text,
    name       text NOT NULL,
    quantity   integer NOT NULL,
    unit_price bigint NOT NULL,
    amount     bigint NOT NULL,
    PRIMARY KEY (order_id, line)
);

CREATE TABLE transactions (
    id          bigint PRIMARY KEY,
    order_id    bigint NOT NULL,
    merchant_id text NOT NULL,
    location_id text,
    created_at  timestamptz NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('sale', 'refund')),
    tender      text NOT NULL,
    card_brand  text,
    result      text NOT NULL,
    amount      bigint NOT NULL,
    -- Refunds are stored negative so that sums are net amounts.
    CHECK (kind = 'sale' AND amount >= 0 OR kind = 'refund' AND amount <= 0)
);

-- The payments export's keyset scan, and the payments nested in orders.
CREATE INDEX transactions_merchant_created_idx ON transactions (merchant_id, created_at, id);
CREATE INDEX transactions_order_id_idx ON transactions (order_id);

CREATE TABLE apps (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    client_id         text NOT NULL UNIQUE,
    -- AES-256-GCM under the master key: the Doshii dialect verifies HMACs
    -- and JWTs with the secret itself, so a hash would not do.
    client_secret_enc bytea NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    app_id     text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    -- sha256 of the key: the key itself is shown once and never stored.
    key_hash   bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE INDEX api_keys_app_id_idx ON api_keys (app_id);

CREATE TABLE installs (
    app_id      text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    merchant_id text NOT NULL REFERENCES merchants (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, merchant_id)
);

CREATE INDEX installs_merchant_id_idx ON installs (merchant_id);
