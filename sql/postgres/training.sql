-- Training data for the closed loop (streamscore train --from-backend): the labeled images stored.

-- name: labeled_images
-- every stored image that came with a label (the producer's label header), in id order
SELECT pixels, label FROM images WHERE label IS NOT NULL ORDER BY image_id;
