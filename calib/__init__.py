"""Calibration sets for int8 export: `edgehar calib build` (`build`: selection + file format)."""
