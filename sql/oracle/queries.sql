-- Every statement the Oracle backend sends besides the schema and the package scripts.
-- Values are always positional binds (:1, :2 …); nothing is formatted into this text.

-- name: insert_image
-- one row per image id, written once: a replayed id fails its row with ORA-00001
-- (executemany with batcherrors), and the stored row stays as first written.
-- batch_id is the batch that first delivered the image (for people; the scorer does not read it)
INSERT INTO mnist_images (image_id, pixels, label, produced_at, batch_id)
VALUES (:1, :2, :3, :4, :5)

-- name: insert_replay
-- an id that was stored already, with the content this batch carries (id-conflict check)
INSERT INTO mnist_batch_replays (image_id, pixels, label) VALUES (:1, :2, :3)

-- name: select_conflicts
-- replayed ids stored with other pixels or another label (NULL labels compare equal)
SELECT r.image_id
  FROM mnist_batch_replays r JOIN mnist_images i ON i.image_id = r.image_id
 WHERE i.pixels <> r.pixels OR DECODE(i.label, r.label, 1, 0) = 0

-- name: insert_batch_id
-- the ids mnist_scorer.score_batch scores in this transaction (id-conflicts left out)
INSERT INTO mnist_batch_ids (image_id) VALUES (:1)

-- name: merge_offset
-- offsets only move forward, so a late replay cannot rewind another consumer's progress
MERGE INTO consumer_offsets t
USING (SELECT :1 AS consumer_group, :2 AS topic, :3 AS kafka_partition, :4 AS next_offset
         FROM dual) s
   ON (t.consumer_group = s.consumer_group AND t.topic = s.topic
       AND t.kafka_partition = s.kafka_partition)
 WHEN MATCHED THEN UPDATE SET t.next_offset = GREATEST(t.next_offset, s.next_offset),
                              t.updated_at = SYSTIMESTAMP
 WHEN NOT MATCHED THEN INSERT (consumer_group, topic, kafka_partition, next_offset)
      VALUES (s.consumer_group, s.topic, s.kafka_partition, s.next_offset)

-- name: select_offsets
SELECT kafka_partition, next_offset FROM consumer_offsets
 WHERE consumer_group = :1 AND topic = :2

-- name: merge_active
-- the version each model name is serving (champion consumers only)
MERGE INTO active_models t
USING (SELECT :1 AS model_name, :2 AS model_version FROM dual) s
   ON (t.model_name = s.model_name)
 WHEN MATCHED THEN UPDATE SET t.model_version = s.model_version, t.activated_at = SYSTIMESTAMP
 WHEN NOT MATCHED THEN INSERT (model_name, model_version) VALUES (s.model_name, s.model_version)

-- name: merge_lifecycle
-- the lifecycle snapshot a consumer applied; a lower revision never replaces a higher one
MERGE INTO model_lifecycle t
USING (SELECT :1 AS model_name, :2 AS revision FROM dual) s
   ON (t.model_name = s.model_name)
 WHEN MATCHED THEN UPDATE SET t.revision = s.revision, t.state = :3, t.updated_at = SYSTIMESTAMP
      WHERE s.revision > t.revision
 WHEN NOT MATCHED THEN INSERT (model_name, revision, state) VALUES (s.model_name, s.revision, :4)

-- name: select_lifecycle
SELECT revision, state FROM model_lifecycle WHERE model_name = :1

-- name: select_predictions
-- the batch's predictions under one model version and role (after mnist_scorer.score_batch)
SELECT p.image_id, p.predicted, p.probabilities
  FROM mnist_batch_ids b JOIN mnist_predictions p ON p.image_id = b.image_id
 WHERE p.model_name = :1 AND p.model_version = :2 AND p.role = :3

-- name: select_model
SELECT sha256, layer_count, input_scale, manifest, canary_pixels FROM model_versions
 WHERE model_name = :1 AND model_version = :2

-- name: select_layers
SELECT layer_no, n_in, n_out, activation, biases, weights FROM model_layers
 WHERE model_name = :1 AND model_version = :2 ORDER BY layer_no

-- name: select_model_digest
SELECT sha256 FROM model_versions WHERE model_name = :1 AND model_version = :2

-- name: select_versions
SELECT model_version FROM model_versions WHERE model_name = :1 ORDER BY model_version

-- name: insert_model
-- large binds (CLOB/BLOB) last: python-oracledb sends values over 32 KB after the others
INSERT INTO model_versions
  (model_name, model_version, sha256, layer_count, input_scale, manifest, canary_pixels)
VALUES (:1, :2, :3, :4, :5, :6, :7)

-- name: insert_layer
INSERT INTO model_layers
  (model_name, model_version, layer_no, n_in, n_out, activation, biases, weights)
VALUES (:1, :2, :3, :4, :5, :6, :7, :8)

-- name: select_package_state
-- the installed package's source digest, how many of its two units are VALID, and the spec
-- line that declares its version (c_package_version; NULL before versions existed)
SELECT (SELECT source_sha256 FROM schema_objects WHERE object_name = :1),
       (SELECT COUNT(*) FROM user_objects
         WHERE object_name = :2 AND object_type IN ('PACKAGE', 'PACKAGE BODY') AND status = 'VALID'),
       (SELECT MAX(text) FROM user_source
         WHERE name = :3 AND type = 'PACKAGE' AND text LIKE '%c_package_version%CONSTANT%')
  FROM dual

-- name: select_compile_errors
-- errors only: with PLSQL_WARNINGS enabled (a DBA's ALTER SYSTEM), user_errors also holds
-- PLW- warnings of a package that compiled VALID, which must not stop the install
SELECT type, line, position, text FROM user_errors
 WHERE name = :1 AND attribute = 'ERROR' ORDER BY type, sequence

-- name: merge_package_digest
MERGE INTO schema_objects t
USING (SELECT :1 AS object_name, :2 AS source_sha256 FROM dual) s
   ON (t.object_name = s.object_name)
 WHEN MATCHED THEN UPDATE SET t.source_sha256 = s.source_sha256, t.installed_at = SYSTIMESTAMP
 WHEN NOT MATCHED THEN INSERT (object_name, source_sha256)
      VALUES (s.object_name, s.source_sha256)

-- name: native_compilation
-- compile the package to native code (set before CREATE PACKAGE, for this session)
ALTER SESSION SET PLSQL_CODE_TYPE = 'NATIVE'
