"""The federation's policy pack: rules importable by the offline plan and by `pulumi preview`."""
