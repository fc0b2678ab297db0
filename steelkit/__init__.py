"""steelkit: the winning recipe of Kaggle's Severstal steel defect detection, as a small toolkit."""

__version__ = "0.1.0"
