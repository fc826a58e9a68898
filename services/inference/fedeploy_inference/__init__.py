"""fedeploy's meteorological model: training, versioned publishing, serving and batch runs."""

__version__ = "0.1.0"
