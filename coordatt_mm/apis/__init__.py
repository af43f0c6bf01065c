"""What users call: building a model from a config, the train/test entry points, folder
inference, and the demo."""
