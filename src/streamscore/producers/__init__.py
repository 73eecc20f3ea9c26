"""Producers: MNIST images to the images topic, model artifacts to the models topic."""
