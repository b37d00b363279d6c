"""The process and the machine: devices, ranks, signals and measuring."""
