"""Model training for labeler: fastai/torch only; called by labeler with plain data (paths, DataFrames, arrays)."""
