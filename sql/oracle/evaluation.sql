-- Evaluation inside the database, as the 2016 notebook did it: SQL over the stored predictions,
-- joined to the labels stored with the images, model version by model version.
--
-- Paste any statement into SQL*Plus or SQLcl as the streamscore user (the owner of the
-- tables of schema.sql). streamscore runs them by name (Backend.evaluation,
-- `streamscore evaluate --from-backend oracle://user@host:1521/service`).
--
-- Served predictions only: rows a shadow model scored are stored for comparison and never
-- served, so they are left out (role <> 'shadow'). Images without a label are counted in
-- `images` of evaluation_by_version and nowhere else. Probabilities are 10 little-endian
-- float32 values in one RAW(40) (schema.sql): class k is bytes 4k+1 .. 4k+4.

-- name: evaluation_by_version
-- per model version: predictions, how many have a label, correct, incorrect, accuracy
SELECT p.model_version,
       COUNT(*) AS images,
       COUNT(i.label) AS labelled,
       SUM(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) AS correct,
       SUM(CASE WHEN p.predicted <> i.label THEN 1 ELSE 0 END) AS incorrect,
       SUM(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) / NULLIF(COUNT(i.label), 0) AS accuracy
  FROM mnist_predictions p
  JOIN mnist_images i ON i.image_id = p.image_id
 WHERE p.role <> 'shadow'
 GROUP BY p.model_version
 ORDER BY p.model_version;

-- name: evaluation_by_digit
-- per model version and true digit: images, correct, incorrect, accuracy
SELECT p.model_version,
       i.label AS true_digit,
       COUNT(*) AS images,
       SUM(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) AS correct,
       SUM(CASE WHEN p.predicted <> i.label THEN 1 ELSE 0 END) AS incorrect,
       SUM(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) / COUNT(*) AS accuracy
  FROM mnist_predictions p
  JOIN mnist_images i ON i.image_id = p.image_id
 WHERE p.role <> 'shadow' AND i.label IS NOT NULL
 GROUP BY p.model_version, i.label
 ORDER BY p.model_version, i.label;

-- name: evaluation_confusion
-- the confusion matrix, one row per non-empty cell: model version, true digit, predicted digit
SELECT p.model_version,
       i.label AS true_digit,
       p.predicted,
       COUNT(*) AS images
  FROM mnist_predictions p
  JOIN mnist_images i ON i.image_id = p.image_id
 WHERE p.role <> 'shadow' AND i.label IS NOT NULL
 GROUP BY p.model_version, i.label, p.predicted
 ORDER BY p.model_version, i.label, p.predicted;

-- name: evaluation_misclassified
-- the first 50 misclassified images of each model version (by image id) with their pixels
-- (784 bytes, row-major 28x28) and the probability the model gave its (wrong) digit
SELECT model_version, image_id, true_digit, predicted, probability, pixels
  FROM (SELECT p.model_version,
               p.image_id,
               i.label AS true_digit,
               p.predicted,
               UTL_RAW.CAST_TO_BINARY_FLOAT(UTL_RAW.SUBSTR(p.probabilities, 4 * p.predicted + 1, 4),
                                            UTL_RAW.LITTLE_ENDIAN) AS probability,
               i.pixels,
               ROW_NUMBER() OVER (PARTITION BY p.model_version ORDER BY p.image_id) AS n
          FROM mnist_predictions p
          JOIN mnist_images i ON i.image_id = p.image_id
         WHERE p.role <> 'shadow' AND p.predicted <> i.label) wrong
 WHERE n <= 50
 ORDER BY model_version, image_id;
