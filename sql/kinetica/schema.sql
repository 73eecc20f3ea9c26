-- streamscore tables in Kinetica. `{schema}` is the only substitution (an identifier,
-- default "streamscore"); values are always bind parameters.
--
-- Kinetica has no multi-statement transactions: every write is an upsert on a primary
-- key and the consumer writes in the order images -> predictions -> offsets, so a
-- replay after a crash at any point converges to the same rows.
-- images, prediction_stage and predictions are sharded on image_id so the distributed
-- inference UDF reads and writes each image on the same shard; the small tables are
-- replicated so every rank can read them.

CREATE SCHEMA IF NOT EXISTS {schema};

-- one row per image ever received (replays overwrite batch_id with the newest batch)
CREATE TABLE IF NOT EXISTS {schema}.images
(
    image_id    VARCHAR(128) NOT NULL,   -- the Kafka key, at most 128 UTF-8 bytes
    pixels      BLOB NOT NULL,           -- 784 raw uint8, row-major 28x28
    label       SMALLINT,                -- NULL when the message had no label header
    produced_at TIMESTAMP NOT NULL,      -- epoch ms from the produced-at header
    batch_id    VARCHAR(64) NOT NULL,    -- the consumer batch that last wrote the row
    PRIMARY KEY (image_id),
    SHARD KEY (image_id)
);

-- append-only output of the inference UDF; merged into predictions, then deleted
CREATE TABLE IF NOT EXISTS {schema}.prediction_stage
(
    image_id      VARCHAR(128) NOT NULL,
    batch_id      VARCHAR(64) NOT NULL,
    model_name    VARCHAR(64) NOT NULL,
    model_version BIGINT NOT NULL,
    role          VARCHAR(16) NOT NULL,
    model_id      VARCHAR(128) NOT NULL,
    predicted     INTEGER NOT NULL,
    p0 REAL NOT NULL, p1 REAL NOT NULL, p2 REAL NOT NULL, p3 REAL NOT NULL, p4 REAL NOT NULL,
    p5 REAL NOT NULL, p6 REAL NOT NULL, p7 REAL NOT NULL, p8 REAL NOT NULL, p9 REAL NOT NULL,
    scored_at     TIMESTAMP NOT NULL,
    SHARD KEY (image_id)
);

-- every prediction names the model (name, version, id) that made it
CREATE TABLE IF NOT EXISTS {schema}.predictions
(
    image_id      VARCHAR(128) NOT NULL,
    batch_id      VARCHAR(64) NOT NULL,
    model_name    VARCHAR(64) NOT NULL,
    model_version BIGINT NOT NULL,
    role          VARCHAR(16) NOT NULL,    -- champion | shadow
    model_id      VARCHAR(128) NOT NULL,
    predicted     INTEGER NOT NULL,
    p0 REAL NOT NULL, p1 REAL NOT NULL, p2 REAL NOT NULL, p3 REAL NOT NULL, p4 REAL NOT NULL,
    p5 REAL NOT NULL, p6 REAL NOT NULL, p7 REAL NOT NULL, p8 REAL NOT NULL, p9 REAL NOT NULL,
    scored_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (image_id, model_name, model_version, role),
    SHARD KEY (image_id)
);

-- one row per model version (the seed's model table: id, loss, created time)
CREATE REPLICATED TABLE IF NOT EXISTS {schema}.models
(
    model_name    VARCHAR(64) NOT NULL,
    model_version BIGINT NOT NULL,
    model_id      VARCHAR(128) NOT NULL,   -- name-vVERSION-first 12 hex of sha256
    sha256        VARCHAR(64) NOT NULL,    -- digest of the weights (artifact contract)
    input_scale   DOUBLE NOT NULL,
    manifest      VARCHAR NOT NULL,        -- the artifact manifest, JSON text
    canary_pixels BLOB,                    -- k x 784 uint8 canary images, if any
    loss          DOUBLE,                  -- training loss when trained in the database
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (model_name, model_version)
);

-- the weights as data: one row per dense layer, float32 little-endian bytes
CREATE REPLICATED TABLE IF NOT EXISTS {schema}.model_layers
(
    model_name    VARCHAR(64) NOT NULL,
    model_version BIGINT NOT NULL,
    layer         INTEGER NOT NULL,
    n_in          INTEGER NOT NULL,
    n_out         INTEGER NOT NULL,
    activation    VARCHAR(16) NOT NULL,
    weights       BLOB NOT NULL,           -- n_in x n_out, row-major
    biases        BLOB NOT NULL,           -- n_out
    PRIMARY KEY (model_name, model_version, layer)
);

-- the model lifecycle snapshot (JSON, as on the models topic) a consumer of this schema last
-- applied: a restart resumes it and never an older one (a lower revision is never written)
CREATE REPLICATED TABLE IF NOT EXISTS {schema}.model_lifecycle
(
    model_name    VARCHAR(64) NOT NULL,
    revision      BIGINT NOT NULL,
    state         VARCHAR NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (model_name)
);

-- next Kafka offset per (group, topic, partition), written after the batch's predictions
CREATE REPLICATED TABLE IF NOT EXISTS {schema}.consumer_offsets
(
    consumer_group VARCHAR(256) NOT NULL,
    topic          VARCHAR(256) NOT NULL,
    partition_id   INTEGER NOT NULL,
    next_offset    BIGINT NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id)
);

-- input of the inference UDF: the batches being scored right now (write_batch and
-- Backend.score insert a batch under its scoring id before the run and delete it after; rows of
-- crashed runs are purged by age at start-up). Kinetica copies a proc's whole input table for
-- every run, so the UDF reads this small table instead of images: a batch costs the same at any
-- table size. Keyed on (image_id, batch_id): two consumers scoring one id never overwrite each
-- other's row.
CREATE TABLE IF NOT EXISTS {schema}.score_inbox
(
    image_id    VARCHAR(128) NOT NULL,
    batch_id    VARCHAR(64) NOT NULL,    -- the scoring id of one write_batch or score call
    pixels      BLOB NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (image_id, batch_id),
    SHARD KEY (image_id)
);

-- training input of the in-database training UDF (train_in_database)
CREATE TABLE IF NOT EXISTS {schema}.training_images
(
    image_id VARCHAR(128) NOT NULL,
    pixels   BLOB NOT NULL,
    label    SMALLINT NOT NULL,
    PRIMARY KEY (image_id)
);
