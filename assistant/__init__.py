"""A study-material assistant for the CELLTOP Phase 1 trial: answers with verified citations."""

__version__ = "0.1.0"
