"""Model training for labeler: fastai/torch only; called by labeler with plain data (paths, DataFrames, arrays)."""

import warnings

# fastai imports torch.jit.script at import time; the deprecation is torch's and fastai's to fix, not the user's.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
