-- Evaluation inside the database, as the Kinetica blog did it: SQL over the inference output
-- table, joined to the labels stored with the images, model version by model version (every
-- prediction also names its model_id).
--
-- Paste any statement into the Kinetica Workbench or KiSQL after `SET CURRENT SCHEMA streamscore`
-- (or the schema of the backend URL's `schema` option): table names are not qualified, and
-- streamscore runs these statements by name with that schema as the current one (the
-- `current_schema` option of /execute/sql), never by rewriting them
-- (`streamscore evaluate --from-backend kinetica://host:9191`).
--
-- Served predictions only: rows a shadow model scored are stored for comparison and never
-- served, so they are left out (role <> 'shadow'). Images without a label are counted in
-- `images` of evaluation_by_version and nowhere else. images and predictions are both sharded
-- on image_id, so the join stays on each shard.

-- name: evaluation_by_version
-- per model version: predictions, how many have a label, correct, incorrect, accuracy
SELECT p.model_version,
       COUNT(*) AS images,
       COUNT(i.label) AS labelled,
       SUM(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) AS correct,
       SUM(CASE WHEN p.predicted <> i.label THEN 1 ELSE 0 END) AS incorrect,
       CAST(SUM(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) AS DOUBLE)
           / NULLIF(COUNT(i.label), 0) AS accuracy
FROM predictions AS p
JOIN images AS i ON i.image_id = p.image_id
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
       CAST(SUM(CASE WHEN p.predicted = i.label THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS accuracy
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
       COUNT(*) AS images
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
             CASE p.predicted WHEN 0 THEN p.p0 WHEN 1 THEN p.p1 WHEN 2 THEN p.p2 WHEN 3 THEN p.p3
                              WHEN 4 THEN p.p4 WHEN 5 THEN p.p5 WHEN 6 THEN p.p6 WHEN 7 THEN p.p7
                              WHEN 8 THEN p.p8 ELSE p.p9 END AS probability,
             i.pixels,
             ROW_NUMBER() OVER (PARTITION BY p.model_version ORDER BY p.image_id) AS n
      FROM predictions AS p
      JOIN images AS i ON i.image_id = p.image_id
      WHERE p.role <> 'shadow' AND p.predicted <> i.label) AS wrong
WHERE n <= 50
ORDER BY model_version, image_id;
