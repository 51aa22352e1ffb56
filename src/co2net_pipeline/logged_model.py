"""Import path of the detector in models logged before the layered layout: their stored
`detector_code.py` imports `co2net_pipeline.logged_model.Detector`."""

from co2net_pipeline.tracking.detector import Detector

__all__ = ["Detector"]
