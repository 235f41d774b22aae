"""The provisioning station: drives secure elements on the line and talks to the backend."""
