"""Device authentication: a short-lived, challenge-bound token signed by the device's SE key."""
