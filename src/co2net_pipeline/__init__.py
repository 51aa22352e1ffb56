"""CO2-Net weakly supervised temporal action localisation as Kedro pipelines."""

__version__ = "0.1.0"
