"""QDLab planners package."""
