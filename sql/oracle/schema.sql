-- streamscore: tables for the Oracle backend (owned by the user from 00_create_user.sql).
--
-- The backend runs this file at start-up (OracleBackend.init_schema) and ignores
-- "name is already used" errors, so running it again is harmless. A DBA may run it
-- by hand instead, as the streamscore user. Every DDL statement commits implicitly:
-- never run it inside a batch transaction.
--
-- Numbers that are epoch milliseconds are NUMBER(15); probabilities are 10
-- little-endian float32 values in one RAW(40), the same bytes numpy writes, so they
-- come back bit-exact. Class k of a prediction in SQL:
--   UTL_RAW.CAST_TO_BINARY_FLOAT(UTL_RAW.SUBSTR(probabilities, 4 * k + 1, 4), UTL_RAW.LITTLE_ENDIAN)

-- Images, one row per Kafka image id, written once by INSERT (a replay's row fails
-- with ORA-00001 and changes nothing). batch_id is the batch that first delivered it.
CREATE TABLE mnist_images (
  image_id     VARCHAR2(128 BYTE) NOT NULL,
  pixels       RAW(784)           NOT NULL,
  label        NUMBER(1),
  produced_at  NUMBER(15),
  batch_id     VARCHAR2(128 BYTE) NOT NULL,
  inserted_at  TIMESTAMP DEFAULT SYSTIMESTAMP NOT NULL,
  CONSTRAINT mnist_images_pk PRIMARY KEY (image_id),
  -- 28 x 28 uint8 pixels, row-major; VSIZE is the stored byte count (no hex string)
  CONSTRAINT mnist_images_pixels_ck CHECK (VSIZE(pixels) = 784),
  CONSTRAINT mnist_images_label_ck CHECK (label BETWEEN 0 AND 9)
);

-- Retention (mnist_scorer.purge) finds old images by inserted_at.
CREATE INDEX mnist_images_inserted_ix ON mnist_images (inserted_at);

-- The ids of the batch being written, for this transaction only: the scorer and
-- select_predictions join it (rows vanish at COMMIT or ROLLBACK, per session).
CREATE GLOBAL TEMPORARY TABLE mnist_batch_ids (
  image_id     VARCHAR2(128 BYTE) NOT NULL,
  CONSTRAINT mnist_batch_ids_pk PRIMARY KEY (image_id)
) ON COMMIT DELETE ROWS;

-- Ids of the batch that were stored already, with the content the batch carries: one
-- join finds the id-conflicts (same id, other pixels or label). Transaction-scoped too.
CREATE GLOBAL TEMPORARY TABLE mnist_batch_replays (
  image_id     VARCHAR2(128 BYTE) NOT NULL,
  pixels       RAW(784)           NOT NULL,
  label        NUMBER(1),
  CONSTRAINT mnist_batch_replays_pk PRIMARY KEY (image_id)
) ON COMMIT DELETE ROWS;

-- One row per installed model version: the artifact's manifest (JSON text) and
-- what the scorer needs before it reads the layers.
CREATE TABLE model_versions (
  model_name     VARCHAR2(128 BYTE) NOT NULL,
  model_version  NUMBER(10)         NOT NULL,
  sha256         VARCHAR2(64 BYTE)  NOT NULL,
  layer_count    NUMBER(3)          NOT NULL,
  input_scale    BINARY_DOUBLE      NOT NULL,
  manifest       CLOB               NOT NULL,
  canary_pixels  BLOB,
  installed_at   TIMESTAMP DEFAULT SYSTIMESTAMP NOT NULL,
  CONSTRAINT model_versions_pk PRIMARY KEY (model_name, model_version),
  CONSTRAINT model_versions_version_ck CHECK (model_version >= 1)
);

-- One row per dense layer: weights are the (n_in, n_out) float32 matrix in row-major
-- order, little-endian (numpy's bytes); biases are n_out float32 values.
CREATE TABLE model_layers (
  model_name     VARCHAR2(128 BYTE) NOT NULL,
  model_version  NUMBER(10)         NOT NULL,
  layer_no       NUMBER(3)          NOT NULL,
  n_in           NUMBER(7)          NOT NULL,
  n_out          NUMBER(7)          NOT NULL,
  activation     VARCHAR2(16 BYTE)  NOT NULL,
  weights        BLOB               NOT NULL,
  biases         BLOB               NOT NULL,
  CONSTRAINT model_layers_pk PRIMARY KEY (model_name, model_version, layer_no),
  CONSTRAINT model_layers_version_fk FOREIGN KEY (model_name, model_version)
    REFERENCES model_versions (model_name, model_version) ON DELETE CASCADE,
  CONSTRAINT model_layers_activation_ck
    CHECK (activation IN ('sigmoid', 'relu', 'tanh', 'softmax', 'identity'))
);

-- The version each model name is serving (written when a consumer switches).
CREATE TABLE active_models (
  model_name     VARCHAR2(128 BYTE) NOT NULL,
  model_version  NUMBER(10)         NOT NULL,
  activated_at   TIMESTAMP DEFAULT SYSTIMESTAMP NOT NULL,
  CONSTRAINT active_models_pk PRIMARY KEY (model_name),
  CONSTRAINT active_models_version_fk FOREIGN KEY (model_name, model_version)
    REFERENCES model_versions (model_name, model_version)
);

-- The model lifecycle (roles, states, champion history; JSON as on the models topic) a consumer of
-- this schema last applied, so a restart serves the same set again and never an older state.
CREATE TABLE model_lifecycle (
  model_name  VARCHAR2(128 BYTE) NOT NULL,
  revision    NUMBER(19)         NOT NULL,
  state       CLOB               NOT NULL,
  updated_at  TIMESTAMP DEFAULT SYSTIMESTAMP NOT NULL,
  CONSTRAINT model_lifecycle_pk PRIMARY KEY (model_name)
);

-- Predictions: one row per image and served model (name, version, role).
CREATE TABLE mnist_predictions (
  image_id       VARCHAR2(128 BYTE) NOT NULL,
  model_name     VARCHAR2(128 BYTE) NOT NULL,
  model_version  NUMBER(10)         NOT NULL,
  role           VARCHAR2(16 BYTE)  NOT NULL,
  predicted      NUMBER(1)          NOT NULL,
  probabilities  RAW(40)            NOT NULL,
  scored_at      NUMBER(15)         NOT NULL,
  CONSTRAINT mnist_predictions_pk PRIMARY KEY (image_id, model_name, model_version, role),
  CONSTRAINT mnist_predictions_image_fk FOREIGN KEY (image_id) REFERENCES mnist_images (image_id),
  CONSTRAINT mnist_predictions_role_ck CHECK (role IN ('champion', 'shadow'))
);

CREATE INDEX mnist_predictions_version_ix ON mnist_predictions (model_name, model_version);

-- Next Kafka offset to consume per (group, topic, partition), committed with the rows.
CREATE TABLE consumer_offsets (
  consumer_group   VARCHAR2(255 BYTE) NOT NULL,
  topic            VARCHAR2(255 BYTE) NOT NULL,
  kafka_partition  NUMBER(10)         NOT NULL,
  next_offset      NUMBER(19)         NOT NULL,
  updated_at       TIMESTAMP DEFAULT SYSTIMESTAMP NOT NULL,
  CONSTRAINT consumer_offsets_pk PRIMARY KEY (consumer_group, topic, kafka_partition)
);

-- Which version of the in-database code is installed (sha256 of its SQL file), so
-- that start-up recompiles the package only when its source changed: a recompile
-- discards the package state of every running session (ORA-04068).
CREATE TABLE schema_objects (
  object_name   VARCHAR2(128 BYTE) NOT NULL,
  source_sha256 VARCHAR2(64 BYTE)  NOT NULL,
  installed_at  TIMESTAMP DEFAULT SYSTIMESTAMP NOT NULL,
  CONSTRAINT schema_objects_pk PRIMARY KEY (object_name)
);
