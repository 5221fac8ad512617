"""QDLab orchestrator package."""
