"""QDLab db package."""
