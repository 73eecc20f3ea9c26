-- streamscore schema for DuckDB (applied idempotently by `streamscore db init` and on consumer start).
-- Images and predictions are keyed so that Kafka replays are absorbed (effectively once).

-- pixels are the 784 bytes of the wire value (row-major 28x28) as one BLOB: a list column
-- (UTINYINT[784]) made every insert about 4x slower (docs/decisions.md); the view images_u8
-- below shows them as UTINYINT[784] for SQL users.
CREATE TABLE IF NOT EXISTS images (
    image_id      VARCHAR PRIMARY KEY,
    pixels        BLOB NOT NULL,                -- 784 bytes, row-major 28x28, as on the wire
    label         TINYINT,                      -- NULL when the producer sent none
    produced_at   BIGINT,                       -- epoch ms from the produced-at header
    src_topic     VARCHAR,
    src_partition INTEGER,
    src_offset    BIGINT,
    batch_id      VARCHAR,
    ingested_at   TIMESTAMP DEFAULT current_timestamp
);

-- One row per installed model version; weights live in model_layers as data.
CREATE TABLE IF NOT EXISTS models (
    name         VARCHAR,
    version      INTEGER,
    activations  VARCHAR[] NOT NULL,
    input_scale  DOUBLE NOT NULL,
    sha256       VARCHAR NOT NULL,
    manifest     VARCHAR NOT NULL,              -- the artifact manifest, JSON
    installed_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (name, version)
);

-- One row per output unit of each layer: the unit's incoming weights (a column of W) and bias.
CREATE TABLE IF NOT EXISTS model_layers (
    name     VARCHAR,
    version  INTEGER,
    layer    INTEGER,
    unit     INTEGER,
    weights  FLOAT[] NOT NULL,
    bias     FLOAT NOT NULL,
    PRIMARY KEY (name, version, layer, unit)
);

CREATE TABLE IF NOT EXISTS predictions (
    image_id      VARCHAR,
    model_name    VARCHAR,
    model_version INTEGER,
    role          VARCHAR,
    predicted     TINYINT NOT NULL,
    probabilities FLOAT[10] NOT NULL,
    scored_at     BIGINT NOT NULL,              -- epoch ms
    batch_id      VARCHAR,
    PRIMARY KEY (image_id, model_name, model_version, role)
);

-- The model lifecycle (roles, states, champion history; JSON as on the models topic) a consumer of
-- this database last applied, so a restart serves the same set again and never an older state.
CREATE TABLE IF NOT EXISTS model_lifecycle (
    name       VARCHAR PRIMARY KEY,
    revision   BIGINT NOT NULL,
    state      VARCHAR NOT NULL,
    updated_at TIMESTAMP DEFAULT current_timestamp
);

-- Next Kafka offset per partition, written in the same transaction as the rows it covers.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id    VARCHAR,
    topic       VARCHAR,
    "partition" INTEGER,
    next_offset BIGINT NOT NULL,
    updated_at  TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (group_id, topic, "partition")
);

-- The images with their pixels as UTINYINT[784] (for SQL users and ad-hoc queries; the
-- scorers read the BLOB). Decoding is pure SQL so the view works in any DuckDB client.
CREATE OR REPLACE VIEW images_u8 AS
SELECT image_id,
       list_transform(range(784),
                      lambda i: ('0x' || substr(hex(pixels), i * 2 + 1, 2))::INTEGER::UTINYINT)::UTINYINT[784]
           AS pixels,
       label, produced_at, src_topic, src_partition, src_offset, batch_id, ingested_at
FROM images;
