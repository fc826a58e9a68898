"""`fedeploy new`: a new site's stack file written with every required key (`scaffold`), and the
command line (`command`)."""
