"""`fedeploy images`: the images the charts run and the digests the release pipeline recorded for
them (`lock`, which the offline plan and `ServiceRelease` read to pin images), and the command
line (`command`)."""
