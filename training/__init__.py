"""Training pipeline for tweet-sentiment: data, tokenizers, models, export, comparison."""

__version__ = "0.1.0"
