"""`fedeploy verify SITE`: a deployed site checked from the outside, as its stack file describes
it: the probes (`checks`) and the command line (`command`)."""
