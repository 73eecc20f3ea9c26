-- The per-session staging table a batch is COPYed into (FORMAT BINARY), created once per
-- connection. ON COMMIT DELETE ROWS: it is empty again after every transaction.
CREATE TEMP TABLE IF NOT EXISTS ss_incoming (
    image_id      text,
    pixels        bytea,
    label         smallint,
    produced_at   bigint,
    src_topic     text,
    src_partition integer,
    src_offset    bigint
) ON COMMIT DELETE ROWS;
