-- streamscore schema for PostgreSQL (applied idempotently by `streamscore db init` and on consumer start).
-- The backend runs this file in one transaction under pg_advisory_xact_lock, so N consumer
-- processes starting at once do not race on the catalog. Tables live in the first schema of
-- the search_path (the backend's `schema` option sets it). Images and predictions are keyed so
-- that Kafka replays are absorbed (effectively once).

-- PL/Python runs the forward pass next to the data. Creating the extension needs a superuser
-- once per database; IF NOT EXISTS is checked before privileges, so later runs by the
-- application user pass.
CREATE EXTENSION IF NOT EXISTS plpython3u;

CREATE TABLE IF NOT EXISTS images (
    image_id      text PRIMARY KEY,
    pixels        bytea NOT NULL CHECK (octet_length(pixels) = 784),  -- uint8, row-major 28x28
    label         smallint CHECK (label BETWEEN 0 AND 9),             -- NULL when the producer sent none
    produced_at   bigint,                                             -- epoch ms (produced-at header)
    src_topic     text,
    src_partition integer,
    src_offset    bigint,
    batch_id      text,
    ingested_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per installed model version; the weights live in model_layers as data.
CREATE TABLE IF NOT EXISTS models (
    name         text,
    version      integer CHECK (version > 0),
    activations  text[] NOT NULL,
    input_scale  double precision NOT NULL,
    sha256       text NOT NULL,                -- streamscore.model.artifact.weights_digest
    manifest     jsonb NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- One row per layer: W (inputs x outputs) flattened row-major, and the biases.
CREATE TABLE IF NOT EXISTS model_layers (
    name     text,
    version  integer,
    layer    integer,
    inputs   integer NOT NULL,
    outputs  integer NOT NULL,
    weights  real[] NOT NULL CHECK (cardinality(weights) = inputs * outputs),
    biases   real[] NOT NULL CHECK (cardinality(biases) = outputs),
    PRIMARY KEY (name, version, layer),
    FOREIGN KEY (name, version) REFERENCES models (name, version) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS predictions (
    image_id      text,
    model_name    text,
    model_version integer,
    role          text CHECK (role IN ('champion', 'shadow', 'member', 'ensemble')),
    predicted     smallint NOT NULL CHECK (predicted BETWEEN 0 AND 9),
    probabilities real[] NOT NULL CHECK (cardinality(probabilities) = 10),
    scored_at     bigint NOT NULL,              -- epoch ms
    batch_id      text,
    PRIMARY KEY (image_id, model_name, model_version, role)
);

-- The model lifecycle (roles, states, champion history; JSON as on the models topic) a consumer of
-- this database last applied, so a restart serves the same set again and never an older state.
CREATE TABLE IF NOT EXISTS model_lifecycle (
    name       text PRIMARY KEY,
    revision   bigint NOT NULL,
    state      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Next Kafka offset per partition, written in the same transaction as the rows it covers.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id    text,
    topic       text,
    "partition" integer,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, "partition")
);

-- sha256 of each in-database code file as last installed (streamscore_score_batch is
-- replaced only when its file changed, so an application user without the right to create
-- PL/Python functions can start consumers once a superuser ran `streamscore db init`).
CREATE TABLE IF NOT EXISTS schema_objects (
    name         text PRIMARY KEY,
    sha256       text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);
