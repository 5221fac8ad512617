"""QDLab devices package."""
