"""A small shop schema the operation tests share: realistic shapes, a few hundred rows.

    customers       uuid key, a mixed-case column "Email" (NULL for every 7th), a user trigger
                    that lower-cases it
    orders          bigint key, a foreign key to customers, NULL totals, a view over some columns
    "Order Items"   a name with a space, a composite key whose second column is named `line "no"`
    events          partitioned by range on a date, composite key (id, at), two partitions

SETTINGS makes batches and partitions small, so every backfill runs several of each.
"""

SHOP = '''
CREATE TABLE customers (
    id uuid PRIMARY KEY,
    "Email" text,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
CREATE FUNCTION normalize_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW."Email" := lower(NEW."Email");
    RETURN NEW;
END $$;
CREATE TRIGGER customers_normalize_email BEFORE INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION normalize_email();

CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id uuid REFERENCES customers (id),
    status text NOT NULL DEFAULT 'new',
    total numeric(10, 2),
    note text
);
CREATE VIEW order_summary AS SELECT id, status, total FROM orders;

CREATE TABLE "Order Items" (
    order_id bigint NOT NULL REFERENCES orders (id),
    "line ""no""" int NOT NULL,
    sku text NOT NULL,
    quantity int NOT NULL,
    unit_price numeric(10, 2),
    PRIMARY KEY (order_id, "line ""no""")
);

CREATE TABLE events (
    id bigint NOT NULL,
    at date NOT NULL,
    kind text,
    payload jsonb,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');

INSERT INTO customers
SELECT md5('customer' || g)::uuid,
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'Customer' || g || '@Example.com' END,
       'Customer ' || g,
       '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 day'
FROM generate_series(1, 120) g;

INSERT INTO orders
SELECT g, md5('customer' || (g % 120 + 1))::uuid, (ARRAY['new', 'paid', 'shipped'])[g % 3 + 1],
       CASE WHEN g % 10 = 0 THEN NULL ELSE g * 1.5 END, NULL
FROM generate_series(1, 300) g;

INSERT INTO "Order Items"
SELECT g % 300 + 1, g, 'SKU-' || g % 17, g % 5 + 1, CASE WHEN g % 11 = 0 THEN NULL ELSE g % 13 + 0.99 END
FROM generate_series(1, 400) g;

INSERT INTO events
SELECT g, '2024-06-01'::date + g % 400, CASE WHEN g % 4 = 0 THEN NULL ELSE 'click' END,
       jsonb_build_object('n', g)
FROM generate_series(1, 300) g;
'''

SETTINGS = "settings: {batch_size: 40, partition_rows: 100, lock_timeout_ms: 2000}"


def migration(name: str, operations: str, extra: str = "") -> str:
    """A migration file's text: `operations` is the YAML list, indented by the caller or not."""
    import textwrap

    ops = textwrap.indent(textwrap.dedent(operations).strip(), "  ")
    return f"name: {name}\n{SETTINGS}\n{extra}\noperations:\n{ops}\n"
