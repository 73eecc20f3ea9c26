SELECT COUNT(*) FROM {schema}.training_images
