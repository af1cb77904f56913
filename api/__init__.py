"""The control plane's HTTP front end: DSP protocol API, management API, health."""
