"""Process lifecycle: command line, startup order, signals, logging, systemd."""
