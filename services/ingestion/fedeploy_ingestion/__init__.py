"""fedeploy's ingestion service: Sentinel copies, edge observation windows, the hub's harvest."""

__version__ = "0.1.0"
