"""The voipscope command line."""
