-- Oracle 23ai's in-database ONNX scoring (oracle://…?onnx=1; docs/oracle.md "ONNX").
-- NEVER RUN AGAINST A DATABASE: written from Oracle's documentation only.
-- {model} is a generated identifier (onnx_scorer.mining_model_name); {attributes} and
-- {using} are the 784 generated pixel columns P0..P783 (onnx_scorer): identifiers and
-- column lists only, every value is a bind.

-- name: onnx_model_exists
SELECT COUNT(*) FROM user_mining_models WHERE model_name = :1

-- name: onnx_load_model
-- creates the mining model (DDL: commits; called before a batch's transaction starts)
BEGIN
  DBMS_VECTOR.LOAD_ONNX_MODEL(:1, :2, JSON(:3));
END;

-- name: onnx_score_staged
-- score_staged's work in one statement: every image of mnist_batch_ids without a prediction
-- for (model, version, role), class and 10 float32 probabilities (as the PL/SQL scorer stores)
INSERT INTO mnist_predictions
  (image_id, model_name, model_version, role, predicted, probabilities, scored_at)
SELECT v.image_id, :1, :2, :3,
       PREDICTION({model} USING {using}),
       UTL_RAW.CONCAT(
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 0 USING {using})), UTL_RAW.LITTLE_ENDIAN),
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 1 USING {using})), UTL_RAW.LITTLE_ENDIAN),
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 2 USING {using})), UTL_RAW.LITTLE_ENDIAN),
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 3 USING {using})), UTL_RAW.LITTLE_ENDIAN),
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 4 USING {using})), UTL_RAW.LITTLE_ENDIAN),
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 5 USING {using})), UTL_RAW.LITTLE_ENDIAN),
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 6 USING {using})), UTL_RAW.LITTLE_ENDIAN),
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 7 USING {using})), UTL_RAW.LITTLE_ENDIAN),
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 8 USING {using})), UTL_RAW.LITTLE_ENDIAN),
         UTL_RAW.CAST_FROM_BINARY_FLOAT(TO_BINARY_FLOAT(PREDICTION_PROBABILITY({model}, 9 USING {using})), UTL_RAW.LITTLE_ENDIAN)),
       :4
  FROM (SELECT i.image_id, {attributes}
          FROM mnist_batch_ids b JOIN mnist_images i ON i.image_id = b.image_id
         WHERE NOT EXISTS (SELECT 1
                             FROM mnist_predictions p
                            WHERE p.image_id = i.image_id AND p.model_name = :5
                              AND p.model_version = :6 AND p.role = :7)) v
