"""landexplorer: put community land data beside open flood, soil and designation layers."""

__version__ = "0.1.0"
