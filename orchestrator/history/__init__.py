"""Tools that read stored campaigns: reports (:mod:`.report`), replay and backtests
(:mod:`.replay`), the twin's calibration (:mod:`.calibrate`), inverse design from everything
stored (:mod:`.suggest`)."""
