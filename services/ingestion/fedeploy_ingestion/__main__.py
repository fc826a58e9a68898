"""`python -m fedeploy_ingestion` is `fedeploy-ingest`."""

from fedeploy_ingestion.cli import main

raise SystemExit(main())
