"""`python -m fedeploy_inference` is the same as the `fedeploy-infer` console script."""

from fedeploy_inference.cli import main

raise SystemExit(main())
