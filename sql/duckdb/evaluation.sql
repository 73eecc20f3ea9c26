-- Evaluation inside the database, as both seed systems did it: SQL over the stored predictions,
-- joined to the labels stored with the images, model version by model version.
--
-- Paste any statement into the DuckDB shell (`duckdb scores.duckdb`, with no consumer writing to
-- the file: DuckDB lets one process open it for writing). streamscore runs them by name
-- (Backend.evaluation, `streamscore evaluate --from-backend duckdb:///scores.duckdb`).
--
-- Served predictions only: rows a shadow model scored are stored for comparison and never
-- served, so they are left out (role <> 'shadow'). Images without a label are counted in
-- `images` of evaluation_by_version and nowhere else.

-- name: evaluation_by_version
-- per model version: predictions, how many have a label, correct, incorrect, accuracy
SELECT p.model_version,
       count(*) AS images,
       count(i.label) AS labelled,
       sum(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) AS correct,
       sum(CASE WHEN p.predicted <> i.label THEN 1 ELSE 0 END) AS incorrect,
       CAST(sum(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) AS DOUBLE)
           / nullif(count(i.label), 0) AS accuracy
FROM predictions AS p
JOIN images AS i ON i.image_id = p.image_id
WHERE p.role <> 'shadow'
GROUP BY p.model_version
ORDER BY p.model_version;

-- name: evaluation_by_digit
-- per model version and true digit: images, correct, incorrect, accuracy
SELECT p.model_version,
       i.label AS true_digit,
       count(*) AS images,
       sum(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) AS correct,
       sum(CASE WHEN p.predicted <> i.label THEN 1 ELSE 0 END) AS incorrect,
       CAST(sum(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) AS DOUBLE) / count(*) AS accuracy
FROM predictions AS p
JOIN images AS i ON i.image_id = p.image_id
WHERE p.role <> 'shadow' AND i.label IS NOT NULL
GROUP BY p.model_version, i.label
ORDER BY p.model_version, i.label;

-- name: evaluation_confusion
-- the confusion matrix, one row per non-empty cell: model version, true digit, predicted digit
SELECT p.model_version,
       i.label AS true_digit,
       p.predicted,
       count(*) AS images
FROM predictions AS p
JOIN images AS i ON i.image_id = p.image_id
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
             p.probabilities[p.predicted + 1] AS probability,
             i.pixels,
             row_number() OVER (PARTITION BY p.model_version ORDER BY p.image_id) AS n
      FROM predictions AS p
      JOIN images AS i ON i.image_id = p.image_id
      WHERE p.role <> 'shadow' AND p.predicted <> i.label) AS wrong
WHERE n <= 50
ORDER BY model_version, image_id;
